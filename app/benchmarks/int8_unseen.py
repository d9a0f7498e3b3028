"""Issue-17 accuracy on unseen images: YOLOX-Nano FP32, FP16 and the default `int8` (ort-cpu),
`int8-trt` (TensorRT Q/DQ layout) and `int8-ov` (OpenVINO layout) variants, scored per the
issue-17 evaluation protocol, on ONNX Runtime's CPU provider or (--backend) another runtime.

  * calibration: default Percentile on coco-train128 (128 photos);
  * tuning images (what a recipe may be chosen on): coco-val-dev64 photos 1-32 (mAP50-95 with
    labels) and photos-misc103 (agreement with FP32);
  * unseen images (reported, never chosen on): coco-val-dev64 photos 33-64 (mAP50-95 and
    agreement = mAP50-95 against FP32's own detections) and every 10th frame of both videos
    (agreement only).
Intervals are the bootstrap over images of `app.core.eval.bootstrap` (95%, paired with FP32).
With --candidates it also builds the equalisation alternatives of CANDIDATES (the measurement
that chose the default; choose on the tuning rows only). Prints a table last and writes JSON.

    python -m app.benchmarks.int8_unseen --assets ../shared/assets [--json F] [--workdir D]
        [--candidates] [--roles tuning,pool] [--backend openvino-cpu]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import onnx

from app.backends.factory import make_runner
from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.eval.evaluate import evaluate
from app.core.frames.sources import list_images
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize

log = logging.getLogger("int8_unseen")
VARIANTS = ["fp32", "fp16", "int8", "int8-trt", "int8-ov"]
VIDEO_STEP = 10
# folder role -> (what it is, the metric reported from it)
FOLDERS = {
    "unseen": ("coco-val-dev64 photos 33-64", "mAP50_95"),
    "videos": (f"every {VIDEO_STEP}th frame of both videos", "agreement_mAP50_95"),
    "tuning": ("coco-val-dev64 photos 1-32", "mAP50_95"),
    "pool": ("photos-misc103", "agreement_mAP50_95"),
}


def split_dev64(assets: Path, out: Path) -> dict[str, Path]:
    """coco-val-dev64 halves as image folders with their YOLO labels beside them (symlinks):
    photos 1-32 of the sorted names are tuning images, 33-64 unseen ones."""
    src = assets / "images" / "coco-val-dev64"
    photos = list_images(src / "images")
    halves = {"tuning": photos[:32], "unseen": photos[32:]}
    folders = {}
    for role, files in halves.items():
        (out / role / "images").mkdir(parents=True, exist_ok=True)
        (out / role / "labels").mkdir(parents=True, exist_ok=True)
        for f in files:
            link = out / role / "images" / f.name
            if not link.exists():
                link.symlink_to(f.resolve())  # a relative --assets would dangle
            label = src / "labels" / f"{f.stem}.txt"
            if label.is_file() and not (out / role / "labels" / label.name).exists():
                (out / role / "labels" / label.name).symlink_to(label.resolve())
        folders[role] = out / role / "images"
    return folders


def video_frames(assets: Path, out: Path, step: int = VIDEO_STEP) -> Path:
    """Every `step`th frame of every video in assets/videos, as lossless PNGs in one folder."""
    folder = out / "video-frames"
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for video in sorted((assets / "videos").glob("*.mp4")):
        cap = cv2.VideoCapture(str(video))
        index = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % step == 0:
                    cv2.imwrite(str(folder / f"{video.stem}_{index:05d}.png"), frame)
                index += 1
        finally:
            cap.release()
    return folder


def protocol_folders(assets: Path, work: Path) -> dict[str, Path]:
    folders = split_dev64(assets, work)
    folders["videos"] = video_frames(assets, work)
    folders["pool"] = assets / "images" / "photos-misc103"
    return {role: folders[role] for role in FOLDERS}


def yolox_workspace(assets: Path, work: Path) -> tuple[Workspace, Path]:
    """The YOLOX-Nano workspace with the protocol's calibration and the default variants."""
    spec = inspect_model(assets / "models" / "yolox-nano-coco")
    ws = Workspace.for_model(spec, work / "yolox")
    calibration = calibrate(ws, assets / "images" / "coco-train128" / "images").folder
    quantize(ws, precisions=["int8", "fp16"], target="ort-cpu", calibration=calibration)
    quantize(ws, precisions=["int8"], target="tensorrt", calibration=calibration)
    quantize(ws, precisions=["int8"], target="openvino", calibration=calibration)
    return ws, calibration


# (variant name, target, make_int8 keyword arguments): equalisation settings measured against
# the default; "stem" entries keep the first compute blocks float as the pre-equalisation recipe
CANDIDATES = [
    ("int8-noeq", "ort-cpu", {"equalize": False}),
    ("int8-trt-noeq", "tensorrt", {"equalize": False}),
    ("int8-stem1", "ort-cpu", {"stem": 1}),
    ("int8-trt-stem1", "tensorrt", {"stem": 1}),
    ("int8-stem2", "ort-cpu", {"stem": 2}),
    ("int8-spread2.5", "ort-cpu", {"spread": 2.5}),
    ("int8-trt-spread2.5", "tensorrt", {"spread": 2.5}),
    ("int8-spread2.5-stem1", "ort-cpu", {"spread": 2.5, "stem": 1}),
    ("int8-trt-spread4", "tensorrt", {"spread": 4.0}),
    ("int8-trt-alpha025", "tensorrt", {"alpha": 0.25}),
    # the TensorRT layout with what the ort-cpu default has: bias correction, and the blocks
    # ort-cpu's sensitivity measurement keeps float (2026-12-04: neither helped, see quantize)
    ("int8-trt-bias", "tensorrt", {"equalize": False, "correct_bias": True}),
    ("int8-trt-sensitive", "tensorrt", {"equalize": False, "sensitive": "ort-cpu"}),
    # SiLUs quantized (QLinearSigmoid + QLinearMul), the ort-cpu default before `silu`
    ("int8-qlinear-silu", "ort-cpu", {"equalize": False, "placement": "qlinear-silu"}),
    # the TensorRT layout before activation shifting (QUANTIZE_VERSION 12) and the steps of
    # today's default (shifted, bias corrected, sensitive blocks float) one at a time
    (
        "int8-trt-before",
        "tensorrt",
        {"equalize": False, "shift": False, "correct_bias": False, "sensitive": "none"},
    ),
    ("int8-trt-shift", "tensorrt", {"equalize": False, "correct_bias": False, "sensitive": "none"}),
    ("int8-trt-shift-bias", "tensorrt", {"equalize": False, "sensitive": "none"}),
    ("int8-trt-shift-sensitive", "tensorrt", {"equalize": False, "correct_bias": False}),
    # the ort-cpu default without the floors under its SiLU and residual-add inputs (13, 14)
    ("int8-nofloor", "ort-cpu", {"equalize": False, "range_floors": False}),
    # the TensorRT-layout default (shifted, stem and sensitive blocks float) with its uneven
    # conv inputs equalised first (session 15; equalised, bias correction does not apply)
    ("int8-trt-eq-keep", "tensorrt", {"sensitive": "tensorrt"}),
]


def build_candidates(ws: Workspace, calibration: Path, wanted: list[str] | None) -> list[str]:
    """Build (or reuse, in a kept --workdir) the CANDIDATES variants; their names."""
    from app.core.model.workspace import cache_key
    from app.core.quant.bias_correction import ensure_channel_means
    from app.core.quant.graph_rules import leading_compute_blocks, name_nodes
    from app.core.quant.quantize import QUANTIZE_VERSION, make_int8
    from app.core.quant.recipe import stem_nodes
    from app.core.quant.sensitive_blocks import load_sensitive_nodes

    spec = ws.spec()
    names = []
    for name, target, options in CANDIDATES:
        if wanted and name not in wanted:
            continue
        names.append(name)
        # reused from a kept --workdir only when built by this recipe version with these options
        # from this calibration (a candidate left from older code is rebuilt, not re-scored)
        key = cache_key("candidate", QUANTIZE_VERSION, target, options, calibration.name)
        if ws.valid_variant(name, key):
            continue
        options = dict(options)
        keep = None
        model = name_nodes(onnx.load(spec.path))
        if "stem" in options:
            keep = leading_compute_blocks(model, int(options.pop("stem")))
        if "sensitive" in options:  # the stem and the blocks measured for another target
            stem = stem_nodes(model)
            other = str(options.pop("sensitive"))
            found = [] if other == "none" else load_sensitive_nodes(calibration, other) or []
            keep = stem + [n for n in found if n not in stem]
        correct_bias = options.pop("correct_bias", None)
        if correct_bias is not False:
            ensure_channel_means(ws, calibration)
        shift = options.pop("shift", None)
        range_floors = options.pop("range_floors", None)
        equalize = options.pop("equalize", True)
        placement = str(options.pop("placement", "default"))
        log.info("building %s", name)
        meta = make_int8(
            Path(spec.path),
            calibration / "ranges.json",
            ws.variant_path(name),
            target,
            keep,
            correct_bias=correct_bias,
            placement=placement,
            equalize_with=spec if equalize else None,
            equalize_options=options or None,
            shift=shift,
            range_floors=range_floors,
        )
        ws.record_variant(name, {"precision": "int8", "target": target, "key": key, **meta})
    return names


def score(
    ws: Workspace,
    names: list[str],
    folders: dict[str, Path],
    progress: Callable[[str], None] = lambda what: None,
    backend: str = "ort-cpu",
) -> dict[str, Any]:
    """{role: evaluate() report} of `names` on every protocol folder, run on `backend`."""
    out = {}
    for role, folder in folders.items():
        progress(role)
        out[role] = evaluate(
            ws, folder, variants=names, backend=backend, runner_factory=make_runner
        )
    return out


def summary(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{variant: {role: {value, ci, diff, diff_ci, agreement, agreement_ci}}} from `score`."""
    out: dict[str, dict[str, Any]] = {}
    for role, report in results.items():
        metric = FOLDERS[role][1]
        ref = next(v for v in report["variants"] if v["name"] == "fp32")["metrics"][metric]
        for v in report["variants"]:
            m = v["metrics"]
            entry = {
                "value": m.get(metric),
                "ci": v.get("metrics_ci", {}).get(metric),
                "diff": round(m[metric] - ref, 2) if metric in m else None,
                "diff_ci": v.get("diff_ci", {}).get(metric),
            }
            if metric != "agreement_mAP50_95" and "agreement_mAP50_95" in m:
                entry["agreement"] = m["agreement_mAP50_95"]
                entry["agreement_ci"] = v.get("metrics_ci", {}).get("agreement_mAP50_95")
            out.setdefault(v["name"], {})[role] = entry
    return out


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def rows_of(summary_: dict[str, dict[str, Any]]) -> list[tuple]:
    rows = []
    for name, roles in summary_.items():
        u, vid, t, pool = (roles.get(r, {}) for r in ("unseen", "videos", "tuning", "pool"))
        rows.append(
            (
                name,
                u.get("value"),
                _ci(u.get("ci")),
                u.get("diff"),
                _ci(u.get("diff_ci")),
                u.get("agreement"),
                vid.get("value"),
                t.get("value"),
                t.get("diff"),
                pool.get("value"),
            )
        )
    return rows


HEADERS = [
    "variant",
    "unseen mAP",
    "95% CI",
    "vs fp32",
    "diff CI",
    "unseen agree",
    "video agree",
    "tuning mAP",
    "vs fp32",
    "pool agree",
]


def print_report(report: dict[str, Any]) -> None:
    cpu = report["device"].get("cpu", "?")
    backend = report.get("backend", "ort-cpu")
    runtime = (
        f"ONNX Runtime {report['device'].get('onnxruntime')} CPU"
        if backend == "ort-cpu"
        else backend
    )
    print(f"YOLOX-Nano, {runtime}, {cpu}")
    for role, (what, metric) in FOLDERS.items():
        print(f"  {role}: {what} ({metric}, {report['images'].get(role, '?')} images)")
    for name, meta in report.get("variant_meta", {}).items():
        print(f"  {name}: {meta}")
    print(table(HEADERS, rows_of(report["summary"])))


def variant_notes(ws: Workspace, names: list[str]) -> dict[str, str]:
    """One line per INT8 variant: how many convs stay float and what equalisation did."""
    notes = {}
    for name in names:
        meta = ws.variant_meta(name) or {}
        if meta.get("precision") != "int8":
            continue
        eq = meta.get("equalization") or {}
        notes[name] = (
            f"{meta.get('compute_ops_kept_float')}/{meta.get('compute_ops')} compute ops float"
            + (f", equalised tensors {eq.get('tensors')}" if eq.get("tensors") else "")
        )
    return notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--workdir", help="keep workspaces and frames here (reused by a later run)")
    ap.add_argument("--candidates", nargs="?", const="all", help="build CANDIDATES (all, or names)")
    ap.add_argument("--roles", default=",".join(FOLDERS), help="folders to score on")
    ap.add_argument("--backend", default="ort-cpu", help="where every variant runs")
    ap.add_argument("--variants", help="score these instead of VARIANTS (comma-separated)")
    args = ap.parse_args(argv)
    setup_logging(False)
    assets = Path(args.assets)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "device": device_info(),
        "backend": args.backend,
        "protocol": FOLDERS,
        "variants": VARIANTS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        roles = [r for r in args.roles.split(",") if r]
        folders = {r: f for r, f in protocol_folders(assets, work).items() if r in roles}
        ws, calibration = yolox_workspace(assets, work)
        names = args.variants.split(",") if args.variants else list(VARIANTS)
        if args.candidates:
            wanted = None if args.candidates == "all" else args.candidates.split(",")
            names += build_candidates(ws, calibration, wanted)
        report["variants"] = names
        results = score(
            ws, names, folders, lambda role: log.info("scoring on %s", role), args.backend
        )
        report["images"] = {role: r["images"] for role, r in results.items()}
        report["variant_meta"] = variant_notes(ws, names)
        report["summary"] = summary(results)
        report["evaluations"] = results
    report["seconds"] = round(time.perf_counter() - t0, 1)
    save_json(args.json_out, report)
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
