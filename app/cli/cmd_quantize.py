"""`int8-studio quantize`: build the INT8 (Q/DQ) and FP16 variants of a calibrated workspace."""

from __future__ import annotations

import argparse

from app.cli.arguments import add_json, add_target, add_workspace, comma_list
from app.cli.output import ProgressBar, save_json, table
from app.cli.preflight import check_calibration_ranges, workspace_for_work
from app.core import defaults
from app.core.model.staleness import mark_stale
from app.core.quant.build import build_variants
from app.core.quant.prepare import preparation_lines
from app.core.quant.recipe import float_summary
from app.core.quant.silu_choice import silu_form_line
from app.core.quant.speed import speed_line
from app.core.quant.variant_speed import openvino_alternative, prepared_beats_int8


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "quantize", help="make INT8 (Q/DQ), FP16 and prepared FP32 variants from a calibration"
    )
    add_workspace(p)
    p.add_argument(
        "--precision",
        type=comma_list,
        default=",".join(defaults.QUANTIZE_PRECISIONS),
        help="comma-separated: int8, fp16, fp32-prep (FP32 with a Focus stem folded into its "
        "conv: same outputs, faster on ONNX Runtime CPU; not made when there is none)",
    )
    add_target(p)
    p.add_argument(
        "--equalize",
        action="store_true",
        help="also build the INT8 variant with its uneven conv inputs equalised "
        "(SmoothQuant-style), as int8-eq (-trt, -ov): it brought YOLOX-Nano's TensorRT layout "
        "closer to FP32 and a ReLU hand detector's further; evaluate both on your images",
    )
    add_json(p, "the variants")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ws = workspace_for_work(args.workspace)
    if "int8" in args.precision:
        check_calibration_ranges(ws)
    variants = build_variants(
        ws,
        args.precision,
        args.target,
        equalized=args.equalize,
        progress=ProgressBar("quantizing"),
    )
    done = {v["name"]: "reused" if v["reused"] else "built" for v in variants if "skipped" not in v}
    listed = mark_stale(ws, ws.variants())
    rows = [  # every variant of the workspace: one left from an older calibration says so
        (
            v["name"],
            v.get("precision", ""),
            v.get("target", ""),
            done.get(v["name"]) or ("stale" if v["stale"] else "ok" if v["valid"] else "damaged"),
            f"{v['bytes'] / 1e6:.2f} MB",
        )
        for v in listed
    ]
    print(table(["variant", "precision", "target", "state", "size"], rows))
    for v in listed:
        if v["stale"] and v["name"] not in done:
            print(f"stale: {v['name']}: {v['stale']}; rebuild it with --target {v.get('target')}")
    for line in preparation_lines(variants):  # what preparation rewrote before quantizing
        print(f"prepared: {line}")
    for v in variants:
        if v.get("skipped"):
            print(f"not made: {v['name']}: {v['skipped']}")
        kept = float_summary(v)  # what stayed out of INT8, and the sensitive blocks among it
        if kept:
            print(f"float: {kept}")
        silu = silu_form_line(v)  # which SiLU form ran faster here, and was kept
        if silu:
            print(f"silu: {silu}")
        speed = speed_line(v)  # measured here, on this CPU: INT8 is not assumed to be faster
        if speed:
            print(f"speed: {speed}")
    verdict = prepared_beats_int8(variants)  # the exact variant is faster than INT8 here
    if verdict:
        print(f"speed: {verdict}")
    hint = openvino_alternative(variants, [v["name"] for v in listed])
    if hint:
        print(
            f"hint: {hint}: int8-studio quantize --workspace {ws.root} --precision int8 "
            f"--target openvino, then int8-studio bench --workspace {ws.root} --backends "
            "ort-cpu,openvino-cpu"
        )
    save_json(args.json_out, {"workspace": str(ws.root), "variants": variants})
    return 0
