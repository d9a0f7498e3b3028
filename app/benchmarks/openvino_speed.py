"""INT8 on a CPU, two runtimes: EfficientNet-Lite0 and YOLOX-Nano FP32 and INT8 timed in turns
in one process on ONNX Runtime's CPU provider (`int8`, the ort-cpu layout) and on OpenVINO
(`int8-ov`, the openvino layout; also `int8` there), with accuracy against FP32 on each runtime
(EfficientNet: top-1 agreement over the 177 photos; YOLOX: mAP50-95 and agreement on
coco-val-dev64). Ratios are against the FP32 of the same runtime and against ONNX Runtime's FP32.
Calibration: Percentile on coco-train128 (the issue-17 protocol). Prints a table last and
writes JSON; records the CPU and its 8-bit dot-product instructions.

    python -m app.benchmarks.openvino_speed --assets ../shared/assets [--seconds 30] [--json F]
        [--workdir D]            keep the workspaces (a later run reuses them)
        [--timing-only]          time the graphs a --workdir already holds (no images needed)
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
from app.benchmarks.int8_speed import IMAGE_SUFFIXES, PHOTO_FOLDERS, efficientnet_spec
from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.eval.evaluate import evaluate
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.model.spec import ModelSpec
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize
from app.core.quant.speed import int8_dot_support, interleaved_latency, synthetic_feed

log = logging.getLogger("openvino_speed")
# (row name, variant, backend): what is timed and scored, per model
ROWS = [
    ("fp32 @ort-cpu", "fp32", "ort-cpu"),
    ("int8 @ort-cpu", "int8", "ort-cpu"),
    ("fp32 @openvino-cpu", "fp32", "openvino-cpu"),
    ("int8 @openvino-cpu", "int8", "openvino-cpu"),
    ("int8-ov @openvino-cpu", "int8-ov", "openvino-cpu"),
]
HEADERS = ["model", "graph @ runtime", "thr", "p50 ms", "vs own fp32", "vs ort fp32", "accuracy"]


def spec_of(model: str, assets: Path) -> ModelSpec:
    if model == "efficientnet-lite0":
        return efficientnet_spec(assets)
    return inspect_model(assets / "models" / "yolox-nano-coco")


def workspace(model: str, assets: Path, work: Path, build: bool) -> Workspace:
    """The model's workspace with `int8` and `int8-ov` built from one Percentile calibration."""
    ws = Workspace.for_model(spec_of(model, assets), work / model)
    if build:
        calibration = calibrate(ws, assets / "images" / "coco-train128" / "images").folder
        for target in ("ort-cpu", "openvino"):
            quantize(ws, precisions=["int8"], target=target, calibration=calibration)
    return ws


def graph(ws: Workspace, variant: str) -> Path:
    return Path(ws.spec().path) if variant == "fp32" else ws.variant_path(variant)


def top1_agreement(ws: Workspace, assets: Path) -> dict[str, float]:
    """Per row: share of the photos on which its top-1 class equals FP32's on the same runtime."""
    pre = Preprocessor(ws.spec().preprocess)
    files = sorted(
        p
        for folder in PHOTO_FOLDERS
        for p in (assets / "images" / folder).iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
    x = [np.array(pre(read_image(f))[0], copy=True) for f in files]
    top1 = {}
    for row, variant, backend in ROWS:
        with make_runner(backend, graph(ws, variant), threads=2) as runner:
            top1[row] = np.array([int(np.argmax(runner.infer(t)[0])) for t in x])
    out = {}
    for row, _, backend in ROWS:
        base = top1[f"fp32 @{backend}"]
        out[row] = f"top-1 agreement {100 * float((top1[row] == base).mean()):.1f}%"
    return out


def detection_scores(ws: Workspace, assets: Path) -> dict[str, str]:
    """Per row: mAP50-95 on coco-val-dev64 and agreement with FP32 on the same runtime."""
    out = {}
    for backend in ("ort-cpu", "openvino-cpu"):
        variants = [v for _, v, b in ROWS if b == backend]
        report = evaluate(
            ws,
            assets / "images" / "coco-val-dev64" / "images",
            variants=variants,
            backend=backend,
            runner_factory=make_runner,
        )
        for v in report["variants"]:
            m = v["metrics"]
            out[f"{v['name']} @{backend}"] = (
                f"mAP50-95 {m['mAP50_95']:.2f}, agreement {m.get('agreement_mAP50_95', 100):.1f}"
            )
    return out


def time_rows(ws: Workspace, seconds: float) -> dict[int, dict[str, dict[str, float]]]:
    spec = ws.spec()
    feed = synthetic_feed(spec.path, spec.preprocess.size)
    paths = {row: graph(ws, variant) for row, variant, _ in ROWS}
    backends = {row: backend for row, _, backend in ROWS}
    return {
        threads: interleaved_latency(
            paths, feed, seconds=seconds, threads=threads, backend=backends, max_rounds=100_000
        )
        for threads in (1, 2)
    }


def rows_of(model: str, result: dict[str, Any]) -> list[tuple]:
    rows = []
    for threads, lat in result["latency_ms"].items():
        ort_fp32 = lat["fp32 @ort-cpu"]["p50"]
        for row, _, backend in ROWS:
            p50 = lat[row]["p50"]
            own = lat[f"fp32 @{backend}"]["p50"]
            accuracy = result.get("accuracy", {}).get(row, "")
            rows.append(
                (
                    model,
                    row,
                    threads,
                    round(p50, 2),
                    round(p50 / own, 3),
                    round(p50 / ort_fp32, 3),
                    accuracy,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--seconds", type=float, default=30.0, help="timing per model and threads")
    ap.add_argument("--models", default="efficientnet-lite0,yolox-nano")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--workdir", help="keep workspaces here (reused by --timing-only)")
    ap.add_argument("--timing-only", action="store_true", help="time a --workdir's graphs only")
    args = ap.parse_args(argv)
    setup_logging(False)
    assets = Path(args.assets)
    t0 = time.perf_counter()
    from app.backends.openvino_cpu import cpu_name

    report: dict[str, Any] = {
        "device": {**device_info(), "openvino_cpu": cpu_name(), **int8_dot_support()},
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        for model in args.models.split(","):
            ws = workspace(model, assets, work, build=not args.timing_only)
            result: dict[str, Any] = {}
            if not args.timing_only:
                log.info("%s: scoring", model)
                scorer = top1_agreement if model == "efficientnet-lite0" else detection_scores
                result["accuracy"] = scorer(ws, assets)
            log.info("%s: timing", model)
            result["latency_ms"] = time_rows(ws, args.seconds)
            report["models"][model] = result
    report["seconds"] = round(time.perf_counter() - t0, 1)
    save_json(args.json_out, report)
    dev = report["device"]
    vnni = "with" if dev.get("vnni") else "without"
    print(f"CPU: {dev.get('cpu')} ({dev.get('openvino_cpu')}), {vnni} VNNI, int8 dot: "
          f"{', '.join(dev.get('int8_dot', [])) or 'none'}; ONNX Runtime "
          f"{dev.get('onnxruntime')}, OpenVINO {dev.get('openvino', '?')}")  # fmt: skip
    rows = [r for model, result in report["models"].items() for r in rows_of(model, result)]
    print(table(HEADERS, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
