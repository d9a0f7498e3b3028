"""`int8-studio calibrate`: sample images, collect activation ranges, write calibration tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli.arguments import (
    add_corrections,
    add_json,
    add_model,
    add_workspace,
    fraction,
    positive_int,
)
from app.cli.model_spec import corrections, model_spec, moved_line
from app.cli.output import ProgressBar, save_json
from app.core import defaults
from app.core.errors import UserError
from app.core.model.overrides import save_overrides
from app.core.model.workspace import Workspace
from app.core.quant.calibration import METHODS, calibrate


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("calibrate", help="collect INT8 activation ranges on your images")
    add_model(p)
    p.add_argument("--images", required=True, help="folder of calibration images (recursive)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--count", type=positive_int, help="use N images, sampled with --seed")
    group.add_argument("--fraction", type=fraction, help="use this fraction of the images")
    p.add_argument("--seed", type=int, default=defaults.CALIBRATION_SEED)
    p.add_argument("--method", choices=METHODS, default=defaults.CALIBRATION_METHOD)
    p.add_argument("--percentile", type=float, default=defaults.PERCENTILE)
    add_corrections(p)
    add_workspace(p, required=False)
    add_json(p, "the result")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not Path(args.images).exists():  # before a workspace is made for nothing
        raise UserError(f"{args.images}: no such folder; give the folder of calibration images")
    spec, merged, _ = model_spec(args, args.workspace)
    ws = Workspace.for_model(spec, args.workspace)
    ws.check_writable()
    if corrections(args):  # this command's flags join the corrections the workspace keeps
        save_overrides(ws.root, merged)
    if moved_line(ws):
        print(moved_line(ws))
    result = calibrate(
        ws,
        args.images,
        count=args.count,
        fraction=args.fraction,
        seed=args.seed,
        method=args.method,
        percentile=args.percentile,
        progress=ProgressBar("calibrating"),
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for s in result.skipped:
        print(f"skipped: {s.source}: {s.reason}", file=sys.stderr)
    state = (
        "reused" if result.reused else f"{result.seconds:.1f} s, {result.images_per_s:.1f} img/s"
    )
    print(
        f"calibration {result.key} ({result.method}) on {len(result.images_used)} images: {state}"
    )
    print(f"workspace   {ws.root}")
    print(f"tables      {result.folder}/calibration.flatbuffers (.cache, .json, _trt.cache)")
    save_json(args.json_out, {"workspace": str(ws.root), **result.to_json()})
    return 0
