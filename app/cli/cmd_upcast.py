"""`int8-studio upcast`: an FP32 copy of a half-precision export (nodes in order), to open in
its place."""

from __future__ import annotations

import argparse
import sys

from app.cli.arguments import add_model


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "upcast",
        help="write an FP32 copy of an FP16 model (half=True exports) to calibrate and quantize",
        description="Widen every float16 weight, tensor, cast and constant of an ONNX model to "
        "float32, put its nodes in dependency order (float16 converters leave them out of "
        "order) and save the copy: the same weights, computed in FP32. The app builds its own "
        "FP16 and INT8 variants from that copy.",
    )
    add_model(p)
    p.add_argument("--out", help="where to write the copy (default: <model>.fp32.onnx beside it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.core.model.upcast import upcast_file

    out, changed, reordered = upcast_file(args.model, args.out)
    print(f"widened {changed} float16 weights, types and attributes to float32", file=sys.stderr)
    if reordered:
        print("put the nodes in dependency order", file=sys.stderr)
    print(f"try:    int8-studio inspect --model {out}", file=sys.stderr)
    print(out)  # stdout carries only the path: MODEL=$(int8-studio upcast --model m.onnx)
    return 0
