"""Issue-17 speed figures: FP32, FP16 and INT8 variants (the default recipe and the placement
alternatives of `app.core.quant.placements`, with and without graph preparation) of
EfficientNet-Lite0 and YOLOX-Nano, timed in turns on ONNX Runtime CPU in one process, with
their agreement with FP32 (EfficientNet top-1 on the photo folders) or accuracy (YOLOX
mAP50-95 on coco-val-dev64). Prints a table and writes JSON; records the CPU and its VNNI.

    python -m app.benchmarks.int8_speed --assets ../shared/assets [--seconds 40] [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from app.backends.factory import make_runner
from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.eval.evaluate import evaluate
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.files import file_sha256
from app.core.model.inspection import inspect_model
from app.core.model.spec import ModelSpec
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.graph_rules import MIN_QDQ_OPSET, name_nodes, raise_opset
from app.core.quant.prepare import prepare_for_quantization
from app.core.quant.quantize import make_int8, quantize
from app.core.quant.recipe import stem_nodes
from app.core.quant.speed import (
    BLOCK_RUNS,
    cpu_session,
    int8_dot_support,
    interleaved_latency,
)
from app.core.timing import SETTLE_S

log = logging.getLogger("int8_speed")
PHOTO_FOLDERS = ("photos-misc103", "imagenet-samples", "coco-val-dev64/images")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
# (variant name, placement, graph prepared); "int8" is the app's default recipe
CANDIDATES = {
    "efficientnet-lite0": [
        ("int8-7bit-weights", "reduce-range", True),
        ("int8-u8u8", "u8u8", True),
        ("int8-unprepared", "default", False),
        ("int8-s8s8", "s8s8", True),
        ("int8-depthwise-float", "depthwise-float", True),
        ("int8-heads", "heads-int8", True),
        ("int8-all", "all-int8", True),
    ],
    "yolox-nano": [
        ("int8-7bit-weights", "reduce-range", True),
        ("int8-unprepared", "default", False),
        ("int8-s8s8", "s8s8", True),
        ("int8-qlinear-silu", "qlinear-silu", True),
        ("int8-depthwise-float", "depthwise-float", True),
        ("int8-heads", "heads-int8", True),
        ("int8-all", "all-int8", True),
        ("int8-stem-only", "default", True),
    ],
}
PREPARED_FP32 = "fp32-prepared"
# candidates built with only the leading stem blocks float: the default before it also kept the
# blocks `sensitive_blocks` finds, so their time cost is measured too
STEM_ONLY = {"int8-stem-only"}


def efficientnet_spec(assets: Path) -> ModelSpec:
    """EfficientNet-Lite0 with the preprocessing its README gives (short side 256, centre crop
    224, (x - 127) / 128), which the guesser cannot know."""
    spec = inspect_model(assets / "models" / "efficientnet-lite0-imagenet")
    pre = dataclasses.replace(
        spec.preprocess,
        resize="resize_crop",
        size=[224, 224],
        crop_fraction=224 / 256,
        color="RGB",
        scale=1 / 255,
        mean=[127 / 255] * 3,
        std=[128 / 255] * 3,
    )
    return dataclasses.replace(spec, preprocess=pre)


def build_variants(ws: Workspace, model: str, calibration: Path) -> list[str]:
    """FP16, the default INT8, the FP32 graph INT8 starts from and the candidates, registered in
    `ws`; their names."""
    quantize(ws, precisions=["int8", "fp16"], calibration=calibration)
    source, ranges = Path(ws.spec().path), calibration / "ranges.json"
    names = ["fp32", "fp16", "int8", write_prepared_fp32(ws, source)]
    for name, placement, prepared in CANDIDATES[model]:
        if ws.valid_variant(name):  # a kept --workdir: built by an earlier run
            names.append(name)
            continue
        keep = None
        if name in STEM_ONLY:
            keep = stem_nodes(name_nodes(onnx.load(str(source))))
        meta = make_int8(
            source,
            ranges,
            ws.variant_path(name),
            "ort-cpu",
            keep,
            placement=placement,
            prepare=prepared,
        )
        ws.record_variant(name, {"precision": "int8", "target": "ort-cpu", **meta})
        names.append(name)
    return names


def write_prepared_fp32(ws: Workspace, source: Path) -> str:
    """`fp32-prepared`: the FP32 graph after the preparation every INT8 variant gets first
    (`prepare`), not quantized. Its row splits INT8's speed-up into what preparation gives any
    precision and what the integer kernels give."""
    name = PREPARED_FP32
    if not ws.valid_variant(name):
        model = name_nodes(raise_opset(onnx.load(str(source)), MIN_QDQ_OPSET))
        path = ws.variant_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        model, info = prepare_for_quantization(model, workdir=path.parent)
        onnx.save(model, str(path))
        ws.record_variant(
            name, {"precision": "fp32", "sha256": file_sha256(path), "preparation": info}
        )
    return name


def top1_agreement(ws: Workspace, names: list[str], assets: Path) -> dict[str, float]:
    """Share of photos on which each variant's top-1 class equals FP32's."""
    spec = ws.spec()
    pre = Preprocessor(spec.preprocess)
    files = sorted(
        p
        for folder in PHOTO_FOLDERS
        for p in (assets / "images" / folder).iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
    top1: dict[str, list[int]] = {}
    for name in names:
        path = spec.path if name == "fp32" else ws.variant_path(name)
        session = cpu_session(path, 2)
        input_name = session.get_inputs()[0].name
        top1[name] = [
            int(np.argmax(session.run(None, {input_name: pre(read_image(f))[0]})[0])) for f in files
        ]
    base = np.array(top1["fp32"])
    return {n: round(float((np.array(v) == base).mean()) * 100, 2) for n, v in top1.items()}


def map_on_dev64(ws: Workspace, names: list[str], assets: Path) -> dict[str, float]:
    ev = evaluate(
        ws,
        assets / "images" / "coco-val-dev64" / "images",
        variants=names,
        runner_factory=make_runner,
    )
    return {v["name"]: v["metrics"]["mAP50_95"] for v in ev["variants"]}


def run_model(
    model: str, spec: ModelSpec, assets: Path, tmp: Path, seconds: float, reuse: bool = False
) -> dict:
    ws = Workspace.for_model(spec, tmp / model)
    if reuse:  # variants built elsewhere (a --workdir carried to this machine) are only re-timed
        calibration = latest_calibration(ws)
        log.info("%s: reusing calibration %s", model, calibration.name)
    else:
        log.info("%s: calibrating, building variants", model)
        # named explicitly: a reused calibration does not become the workspace's latest
        calibration = calibrate(ws, assets / "images" / "coco-train128" / "images").folder
    names = build_variants(ws, model, calibration)
    paths = {n: (spec.path if n == "fp32" else ws.variant_path(n)) for n in names}
    from app.core.quant.speed import synthetic_feed

    feed = synthetic_feed(spec.path, spec.preprocess.size)
    latency = {
        threads: interleaved_latency(
            paths, feed, seconds=seconds, threads=threads, max_rounds=100_000
        )
        for threads in (1, 2)
    }
    if model == "yolox-nano":
        quality = {"metric": "mAP50-95 (coco-val-dev64)", "values": map_on_dev64(ws, names, assets)}
    else:
        quality = {
            "metric": "top-1 agreement with FP32 % (" + ", ".join(PHOTO_FOLDERS) + ")",
            "values": top1_agreement(ws, names, assets),
        }
    return {"variants": names, "latency_ms": latency, "quality": quality}


def rows_of(model: str, result: dict) -> list[tuple]:
    lat, q = result["latency_ms"], result["quality"]["values"]
    rows = []
    for name in result["variants"]:
        one, two = lat[1][name]["p50"], lat[2][name]["p50"]
        rows.append(
            (
                model,
                name,
                round(one, 2),
                round(one / lat[1]["fp32"]["p50"], 3),
                round(two, 2),
                round(two / lat[2]["fp32"]["p50"], 3),
                q.get(name, ""),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--seconds", type=float, default=40.0, help="timing per model and thread count")
    ap.add_argument("--models", default="efficientnet-lite0,yolox-nano")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--workdir", help="keep workspaces here (calibrations and variants reused)")
    ap.add_argument(
        "--reuse-calibration",
        action="store_true",
        help="use the --workdir's last calibration instead of calibrating (to re-time variants "
        "built on another machine without carrying the calibration photos there)",
    )
    args = ap.parse_args(argv)
    setup_logging(False)
    assets = Path(args.assets)
    specs = {
        "efficientnet-lite0": lambda: efficientnet_spec(assets),
        "yolox-nano": lambda: inspect_model(assets / "models" / "yolox-nano-coco"),
    }
    report: dict[str, Any] = {
        "device": device_info(),
        "cpu_int8": int8_dot_support(),
        "timing": f"ORT CPU, variants run in turns in one process for {args.seconds} s per "
        f"model and thread count (at 2 threads a turn is {SETTLE_S} s of runs not counted, "
        f"then {BLOCK_RUNS} counted); p50 of each; ratios against fp32 from the same turns",
    }
    rows: list[tuple] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            result = run_model(
                model, specs[model](), assets, work, args.seconds, args.reuse_calibration
            )
            report[model] = result
            rows += rows_of(model, result)
            save_json(args.json_out, report)  # each model's figures kept as soon as measured
    cpu = report["device"]["cpu"]
    vnni = "with VNNI" if report["cpu_int8"]["vnni"] else "without VNNI (AVX2 only)"
    print(f"ONNX Runtime {report['device']['onnxruntime']} CPU, {cpu}, {vnni}; p50 in turns")
    print(
        table(
            ["model", "variant", "1 thr ms", "x fp32", "2 thr ms", "x fp32", "agreement/mAP"],
            rows,
        )
    )
    for model in (m for m in report if m in specs):
        print(f"{model}: {report[model]['quality']['metric']}")
    save_json(args.json_out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
