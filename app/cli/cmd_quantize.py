"""`int8-studio quantize`: build the INT8 (Q/DQ) and FP16 variants of a calibrated workspace."""

from __future__ import annotations

import argparse

from app.cli.output import ProgressBar, save_json, table
from app.core.model.workspace import Workspace
from app.core.quant.quantize import TARGETS, quantize


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("quantize", help="make INT8 (Q/DQ) and FP16 variants from a calibration")
    p.add_argument("--workspace", required=True, help="the folder `calibrate` printed")
    p.add_argument("--precision", default="int8,fp16", help="comma-separated: int8, fp16")
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="ort-cpu",
        help="where the INT8 graph will run (decides Q/DQ placement)",
    )
    p.add_argument("--json", dest="json_out", help="write the variants as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ws = Workspace.open(args.workspace)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    variants = quantize(
        ws,
        precisions=precisions,
        target=args.target,
        progress=ProgressBar("quantizing"),
        measure_speed=args.target == "ort-cpu",
    )
    rows = [
        (
            v["name"],
            v["precision"],
            v.get("target", ""),
            "reused" if v["reused"] else "built",
            f"{ws.variant_path(v['name']).stat().st_size / 1e6:.2f} MB",
        )
        for v in variants
    ]
    print(table(["variant", "precision", "target", "state", "size"], rows))
    for v in variants:
        speed = v.get("speed")
        if speed:  # measured here, on this CPU: INT8 is not assumed to be faster
            vnni = "with" if speed["vnni"] else "without"
            print(
                f"speed: {speed['verdict']} (FP32 {speed['fp32_p50_ms']:.1f} ms, "
                f"{v['name']} {speed['int8_p50_ms']:.1f} ms, 1 thread, CPU {vnni} VNNI)"
            )
    save_json(args.json_out, {"workspace": str(ws.root), "variants": variants})
    return 0
