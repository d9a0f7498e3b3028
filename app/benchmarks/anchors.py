"""Issue-17 anchors in one run: YOLOX-Nano FP32, FP16, the app's default INT8 in both layouts
(`int8` for ort-cpu, `int8-trt` the TensorRT Q/DQ layout), ONNX Runtime's stock
`quantize_static` (QDQ, per-channel, Percentile and MinMax, no node excluded) and NVIDIA
ModelOpt's ONNX PTQ (INT8, entropy and max), all calibrated on the same coco-train128 images,
scored by the app's evaluation on the protocol's unseen images (coco-val-dev64 photos 33-64 with
labels; every 10th frame of the videos, agreement with FP32 only) with bootstrap intervals, and
timed against FP32 on ONNX Runtime CPU in turns. Prints a table last and writes JSON.

    python -m app.benchmarks.anchors --assets ../shared/assets [--json F] \
        [--modelopt-python /path/to/venv-with-modelopt/bin/python]

ModelOpt is not a dependency of the app (see `modelopt_ptq`): without it the script says why in
its table and JSON and records everything else. Memory: ORT's stock Percentile calibration keeps
every activation of every calibration image (17.9 GB peak for the 128 photos on 2026-12-03);
`--count` or `--methods` without ort-stock-percentile keep a run small.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.factory import make_runner
from app.benchmarks.modelopt_ptq import run_modelopt
from app.benchmarks.stock_ort import calibration_tensors, op_counts, stock_quantize_static
from app.benchmarks.unseen_images import dev64_half, video_frames
from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.eval.evaluate import evaluate
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.frames.sources import list_images
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize
from app.core.quant.speed import int8_dot_support, interleaved_latency

log = logging.getLogger("anchors")
# name -> (what it is, how it is built); the app's own rows first
METHODS = {
    "fp32": "FP32 (the model as exported)",
    "fp16": "FP16 (app)",
    "int8": "INT8 app default, ort-cpu recipe",
    "int8-trt": "INT8 app default, TensorRT Q/DQ layout",
    "ort-stock-percentile": "ORT quantize_static QDQ per-channel, Percentile",
    "ort-stock-minmax": "ORT quantize_static QDQ per-channel, MinMax",
    "modelopt-entropy": "ModelOpt ONNX PTQ INT8, entropy",
    "modelopt-max": "ModelOpt ONNX PTQ INT8, max",
}


def build_app_variants(ws: Workspace, calib_dir: Path, count: int | None) -> dict[str, Any]:
    """FP16 and the default INT8 of both layouts, from the app's own calibrate + quantize."""
    result = calibrate(ws, calib_dir, count=count)  # the default method: percentile
    quantize(ws, precisions=["fp16", "int8"], calibration=result.folder)
    quantize(ws, precisions=["int8"], target="tensorrt", calibration=result.folder)
    return {"method": result.method, "images": len(result.images_used), "seconds": result.seconds}


def build_anchor(
    ws: Workspace, name: str, tensors: np.ndarray, calib_npy: Path, modelopt_python: str | None
) -> dict[str, Any]:
    """Build one anchor variant into the workspace; its settings, or {"error": why}."""
    spec = ws.spec()
    out = ws.variant_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if name.startswith("ort-stock-"):
        method = name.removeprefix("ort-stock-")
        meta = stock_quantize_static(Path(spec.path), out, spec.input_name, tensors, method)
    else:
        method = name.removeprefix("modelopt-")
        meta = run_modelopt(Path(spec.path), out, calib_npy, method, modelopt_python)
        if "error" in meta:
            return meta
        meta["ops"] = op_counts(out)
    meta["build_seconds"] = round(time.perf_counter() - t0, 1)
    ws.record_variant(name, {"precision": "int8", "target": "anchor", **meta})
    return meta


def unseen_sets(assets: Path, tmp: Path, frames: bool) -> dict[str, Path]:
    """The protocol's unseen images as folders `evaluate` reads."""
    sets = {"photos": dev64_half(assets, tmp / "unseen-photos", "unseen")}
    if frames:
        sets["frames"] = video_frames(assets, tmp / "unseen-frames" / "images")
    return sets


def score(ws: Workspace, names: list[str], sets: dict[str, Path]) -> dict[str, dict]:
    """The app's evaluation of every variant on each unseen set: {set: {variant: entry}}."""
    out: dict[str, dict] = {}
    for label, folder in sets.items():
        log.info("evaluating %d variants on %s", len(names), folder)
        report = evaluate(ws, folder, variants=names, runner_factory=make_runner)
        out[label] = {
            "images": report["images"],
            "labelled": report["labelled"],
            "intervals": report.get("intervals"),
            "variants": {
                v["name"]: {k: v.get(k) for k in ("metrics", "metrics_ci", "diff_ci")}
                for v in report["variants"]
            },
        }
    return out


def latency(ws: Workspace, names: list[str], photo: Path, seconds: float) -> dict[str, Any]:
    """p50 of every variant on ORT CPU (1 thread), run in turns; ratios to FP32's p50."""
    spec = ws.spec()
    feed = Preprocessor(spec.preprocess)(read_image(photo))[0]
    paths = {n: (spec.path if n == "fp32" else ws.variant_path(n)) for n in names}
    lat = interleaved_latency(paths, feed, seconds=seconds, threads=1, max_rounds=100_000)
    base = lat["fp32"]["p50"]
    return {
        "how": f"ORT CPU, 1 thread, variants in turns for {seconds} s, feed = {photo.name}",
        "p50_ms": {n: round(v["p50"], 2) for n, v in lat.items()},
        "runs": {n: v["runs"] for n, v in lat.items()},
        "x_fp32": {n: round(v["p50"] / base, 3) for n, v in lat.items()},
    }


def _ci(entry: dict | None, key: str, metric: str) -> str:
    ci = ((entry or {}).get(key) or {}).get(metric)
    return f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""


def rows_of(report: dict) -> list[tuple]:
    """One table row per method: unseen mAP50-95 [CI], its difference to FP32 [CI], agreement
    with FP32 on the unseen photos and frames [CI], latency ratio; or why it is missing."""
    scores, lat = report.get("scores", {}), report.get("latency", {}).get("x_fp32", {})
    rows = []
    for name in report["methods"]:
        if name in report["errors"]:
            rows.append((name, f"not run: {report['errors'][name]}", "", "", "", ""))
            continue
        photos = scores.get("photos", {}).get("variants", {}).get(name, {})
        frames = scores.get("frames", {}).get("variants", {}).get(name, {})
        m = photos.get("metrics", {})
        diff = m.get("mAP50_95", 0.0) - scores["photos"]["variants"]["fp32"]["metrics"]["mAP50_95"]
        rows.append(
            (
                name,
                f"{m.get('mAP50_95', float('nan')):.2f}{_ci(photos, 'metrics_ci', 'mAP50_95')}",
                "" if name == "fp32" else f"{diff:+.2f}{_ci(photos, 'diff_ci', 'mAP50_95')}",
                f"{m.get('agreement_mAP50_95', float('nan')):.1f}"
                + _ci(photos, "metrics_ci", "agreement_mAP50_95"),
                f"{frames.get('metrics', {}).get('agreement_mAP50_95', float('nan')):.1f}"
                + _ci(frames, "metrics_ci", "agreement_mAP50_95")
                if frames
                else "",
                f"{lat[name]:.2f}x" if name in lat else "",
            )
        )
    return rows


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    assets = Path(args.assets)
    spec = inspect_model(assets / "models" / "yolox-nano-coco")
    ws = Workspace.for_model(spec, work / "yolox")
    calib_dir = assets / "images" / "coco-train128" / "images"
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    report: dict[str, Any] = {
        "model": "YOLOX-Nano (models/yolox-nano-coco)",
        "device": device_info(),
        "cpu_int8": int8_dot_support(),
        "methods": wanted,
        "descriptions": {m: METHODS[m] for m in wanted},
        "calibration_images": str(calib_dir),
        "errors": {},
        "built": {},
    }
    if {"fp16", "int8", "int8-trt"} & set(wanted):
        log.info("app: calibrating and quantizing")
        report["built"]["app"] = build_app_variants(ws, calib_dir, args.count)
    tensors = calibration_tensors(spec, calib_dir, args.count)
    calib_npy = work / "calibration.npy"
    np.save(calib_npy, tensors)
    report["calibration_tensors"] = list(tensors.shape)
    for name in (m for m in wanted if m.startswith(("ort-stock-", "modelopt-"))):
        log.info("%s: building", name)
        meta = build_anchor(ws, name, tensors, calib_npy, args.modelopt_python)
        if "error" in meta:
            report["errors"][name] = meta["error"]
            log.warning("%s not built: %s", name, meta["error"])
        else:
            report["built"][name] = meta
    del tensors
    names = [n for n in wanted if n not in report["errors"]]
    names = ["fp32", *(n for n in names if n != "fp32")]
    sets = unseen_sets(assets, work, frames=not args.no_frames)
    report["scores"] = score(ws, names, sets)
    photo = list_images(sets["photos"])[0]
    report["latency"] = latency(ws, names, photo, args.seconds)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    ap.add_argument("--modelopt-python", help="a Python that has nvidia-modelopt installed")
    ap.add_argument("--count", type=int, help="calibration images (default: all 128)")
    ap.add_argument("--seconds", type=float, default=30.0, help="latency timing, in turns")
    ap.add_argument("--no-frames", action="store_true", help="skip the video frames")
    ap.add_argument("--workdir", help="keep the workspace and image sets here")
    args = ap.parse_args(argv)
    setup_logging(False)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args, Path(args.workdir) if args.workdir else Path(tmp))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    save_json(args.json_out, report)
    cpu = report["device"]["cpu"]
    vnni = "with VNNI" if report["cpu_int8"]["vnni"] else "without VNNI (AVX2 only)"
    photos = report["scores"]["photos"]
    frames = report["scores"].get("frames", {})
    print(f"YOLOX-Nano, ONNX Runtime {report['device']['onnxruntime']} CPU, {cpu}, {vnni}")
    print(
        f"unseen: {photos['images']} coco-val-dev64 photos (33-64, labelled), "
        f"{frames.get('images', 0)} video frames (every 10th, agreement only); "
        f"calibration: {report['calibration_tensors'][0]} coco-train128 photos; "
        "[95% bootstrap CI over images]; latency: " + report["latency"]["how"]
    )
    print(
        table(
            [
                "method",
                "mAP50-95 unseen",
                "vs FP32",
                "agreement photos",
                "agreement frames",
                "x FP32 latency",
            ],
            rows_of(report),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
