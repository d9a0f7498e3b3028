"""`int8-studio adapt` (also `upcast`): the copy of a model that the app can open, to open in
its place (float16 widened, nodes in order, a batch axis added, colour into a gray model, the
picture's size inputs computed from the image)."""

from __future__ import annotations

import argparse
import sys

from app.cli.arguments import add_model


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "adapt",
        aliases=["upcast"],
        help="write a copy of a model the app refuses but can open through a copy: FP16 "
        "exports (half=True), nodes out of order, an image input without a batch axis or with "
        "one channel, size inputs beside the image (PaddleDetection, RT-DETR)",
        description="Write a copy the app can open: every float16 weight, tensor, cast and "
        "constant widened to float32 (the same weights, computed in FP32; the app builds its "
        "own FP16 and INT8 variants from it), nodes put in dependency order (float16 "
        "converters leave them out of order), a batch axis of 1 added to an image input "
        "that has none ([3, H, W]: torchvision's detectors), RGB converted to gray in front of "
        "a one-channel input, the picture's size inputs beside the image (PaddleDetection's "
        "im_shape / scale_factor, RT-DETR's orig_target_sizes) computed from the image so "
        "boxes come out in input pixels. The model itself is not changed.",
    )
    add_model(p)
    p.add_argument(
        "--out",
        help="where to write the copy, a file or a folder (default beside the model: "
        "<model>.fp32.onnx when float16 was widened, else <model>.adapted.onnx)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.core.model.adapted_copy import write_adapted_copy

    copy = write_adapted_copy(args.model, args.out)
    print(f"wrote the copy: {copy.summary()}", file=sys.stderr)
    print(f"try:    int8-studio inspect --model {copy.path}", file=sys.stderr)
    print(copy.path)  # stdout carries only the path: MODEL=$(int8-studio adapt --model m.onnx)
    return 0
