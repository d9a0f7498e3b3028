"""Issue 17's mixed-precision figures in one run: the automatic mixed precision on YOLOX-Nano for
both Q/DQ layouts, tuned on coco-val-dev64 photos 1-32 (labelled) plus photos-misc103 (agreement
with FP32 only), then FP32, the default INT8 and the mixed result on images nothing was tuned on:
dev64 photos 33-64 (mAP50-95 with labels, and agreement with FP32) and every 10th frame of both
videos (agreement only), with bootstrap intervals.

    python -m app.benchmarks.mixed_unseen --assets ../shared/assets [--json F] [--workdir D]
        [--targets ort-cpu,tensorrt,openvino]

Calibration: the default Percentile on coco-train128 (128 photos), as the app does it.
`--min-agreement` (default 100, which no INT8 graph reaches): with it the search climbs to the
cap and keeps the trial closest to FP32 within 10% of the convolutions.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from app.backends.factory import make_runner
from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.eval.evaluate import evaluate
from app.core.frames.sources import FrameSource
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.precision.mixed import search_mixed_precision
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize

TARGETS = (
    ("ort-cpu", "int8", "int8-mp"),
    ("tensorrt", "int8-trt", "int8-mp-trt"),
    ("openvino", "int8-ov", "int8-mp-ov"),
)
FRAME_STEP = 10


def dev64_half(assets: Path, dest: Path, first: bool) -> Path:
    """Photos 1-32 (first) or 33-64 of coco-val-dev64 (sorted names) with their labels, in
    dest/images and dest/labels; returns the images folder."""
    src = assets / "images" / "coco-val-dev64"
    photos = sorted((src / "images").glob("*.jpg"))
    half = photos[:32] if first else photos[32:64]
    (dest / "images").mkdir(parents=True, exist_ok=True)  # a rerun in --workdir refills them
    (dest / "labels").mkdir(exist_ok=True)
    for f in half:
        shutil.copy(f, dest / "images" / f.name)
        label = src / "labels" / f"{f.stem}.txt"
        if label.is_file():
            shutil.copy(label, dest / "labels" / label.name)
    return dest / "images"


def video_frames(assets: Path, dest: Path) -> Path:
    """Every FRAME_STEP-th frame of both videos as PNG (lossless) in one folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for video in sorted((assets / "videos").glob("*.mp4")):
        for frame in FrameSource(str(video)):
            if frame.index % FRAME_STEP == 0:
                cv2.imwrite(str(dest / f"{video.stem}_{frame.index:05d}.png"), frame.image)
    return dest


def _figures(ev: dict[str, Any], name: str, metric: str) -> dict[str, Any]:
    v = next(x for x in ev["variants"] if x["name"] == name)
    return {
        "value": v["metrics"].get(metric),
        "ci": (v.get("metrics_ci") or {}).get(metric),
        "diff_ci": (v.get("diff_ci") or {}).get(metric),
    }


def _cell(f: dict[str, Any], fp32: float | None = None) -> str:
    if f["value"] is None:
        return "-"
    text = f"{f['value']:.2f}"
    if fp32 is not None:
        text += f" ({f['value'] - fp32:+.2f})"
    return text + (f" [{f['diff_ci'][0]:+.2f}, {f['diff_ci'][1]:+.2f}]" if f["diff_ci"] else "")


def run(
    assets: Path,
    work: Path,
    min_agreement: float,
    report: dict[str, Any],
    targets: tuple[tuple[str, str, str], ...] = TARGETS,
) -> list[tuple]:
    spec = inspect_model(assets / "models" / "yolox-nano-coco")
    ws = Workspace.for_model(spec, work / "ws")
    t = time.perf_counter()
    calibrate(ws, assets / "images" / "coco-train128" / "images")
    report["calibration_seconds"] = round(time.perf_counter() - t, 1)
    tune = dev64_half(assets, work / "tune", first=True)
    unseen = dev64_half(assets, work / "unseen", first=False)
    frames = video_frames(assets, work / "frames")
    searches: dict[str, dict[str, Any]] = {}
    for target, default, mixed in targets:
        quantize(ws, precisions=["int8"], target=target)
        searches[mixed] = search_mixed_precision(
            ws,
            tune,
            pool=[assets / "images" / "photos-misc103"],
            target_drop=0.5,
            min_agreement=min_agreement,
            target=target,
            max_fraction=0.10,
            variant_name=mixed,
            runner_factory=make_runner,
        )
        searches[mixed]["default_variant"] = default
        save_json(work / f"search-{mixed}.json", searches[mixed])  # kept if a later step fails
    names = ["fp32", *(n for _, d, m in targets for n in (d, m))]
    ev_photos = evaluate(ws, unseen, variants=names, runner_factory=make_runner)
    ev_frames = evaluate(ws, frames, variants=names, runner_factory=make_runner)
    report.update({"searches": searches, "unseen_photos": ev_photos, "unseen_frames": ev_frames})
    report["unseen_frames_count"] = ev_frames["images"]
    fp32_map = _figures(ev_photos, "fp32", "mAP50_95")["value"]
    rows = []
    for name in names:
        search = searches.get(name)
        meta = ws.variant_meta(name) or {}
        floats = meta.get("compute_ops_kept_float", 0)
        total = meta.get("compute_ops") or (search or {}).get("compute_ops") or "-"
        rows.append(
            (
                name,
                f"{floats}/{total}" if name != "fp32" else "-",
                _cell(_figures(ev_photos, name, "mAP50_95"), fp32_map),
                _cell(_figures(ev_photos, name, "agreement_mAP50_95")),
                _cell(_figures(ev_frames, name, "agreement_mAP50_95")),
                _search_cell(search, "search"),
                _search_cell(search, "held_out"),
            )
        )
    return rows


def _search_cell(search: dict[str, Any] | None, part: str) -> str:
    """The mixed search's own agreement on its search or held-out tuning images."""
    if search is None:
        return "-"
    if part == "search":
        return f"{search['int8']:.2f}"
    return f"{search['held_out']['chosen']['metrics'][search['metric']]:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--assets", default=str(Path(__file__).resolve().parents[3] / "shared" / "assets")
    )
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--workdir", help="keep the workspace here (default: a temporary folder)")
    ap.add_argument("--min-agreement", type=float, default=100.0)
    ap.add_argument("--targets", default="ort-cpu,tensorrt", help="Q/DQ layouts to search")
    args = ap.parse_args(argv)
    setup_logging()
    report: dict[str, Any] = {"device": device_info(), "min_agreement": args.min_agreement}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as td:
        work = Path(args.workdir) if args.workdir else Path(td)
        wanted = args.targets.split(",")
        targets = tuple(t for t in TARGETS if t[0] in wanted)
        rows = run(Path(args.assets), work, args.min_agreement, report, targets)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    for name, s in report["searches"].items():
        img = s["images"]
        print(
            f"{name}: searched on {img['search_images']} images ({img['search_labelled']} "
            f"labelled), checked on {img['held_out_images']} held out; chose "
            f"'{s['chosen_trial']}', {s['layers_kept']} of {s['compute_ops']} convs float "
            f"(cap {s['cap']}); {len(s['trials'])} trials, {s['seconds']} s"
        )
    print(
        f"\nunseen: coco-val-dev64 photos 33-64 (mAP50-95 vs labels, (diff to FP32) [95% CI of "
        f"the diff]; agreement = mAP50-95 vs FP32's detections) and "
        f"{report['unseen_frames_count']} video frames (every {FRAME_STEP}th); "
        f"tuning: dev64 1-32 + photos-misc103; {report['seconds']} s"
    )
    headers = [
        "variant",
        "convs float",
        "dev64 33-64 mAP50-95",
        "dev64 33-64 agreement",
        "video agreement",
        "search agreement",
        "tuning held-out agreement",
    ]
    print(table(headers, rows))
    save_json(args.json_out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
