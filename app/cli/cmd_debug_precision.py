"""`int8-studio debug-precision`: per-layer INT8 error table and automatic mixed precision."""

from __future__ import annotations

import argparse

from app.backends.factory import make_runner
from app.cli.arguments import (
    add_eval_truth,
    add_json,
    add_target,
    add_workspace,
    positive_int,
    probability,
)
from app.cli.output import ProgressBar, save_json, table
from app.cli.preflight import check_calibration_ranges, check_json, workspace_for_work
from app.core import defaults
from app.core.atomic import write_json
from app.core.precision.debug import analyse_layers
from app.core.precision.mixed import search_mixed_precision


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "debug-precision", help="find the layers INT8 hurts and keep the fewest of them in float"
    )
    add_workspace(p)
    add_eval_truth(p)
    p.add_argument(
        "--target-drop",
        type=float,
        default=defaults.TARGET_DROP,
        help="largest accepted drop vs FP32 (mAP points or top-1 points)",
    )
    add_target(p)
    p.add_argument("--analysis-images", type=positive_int, default=defaults.ANALYSIS_IMAGES)
    p.add_argument(
        "--max-fraction",
        type=probability,
        default=defaults.MAX_FLOAT_FRACTION,
        help="most compute ops that may stay out of INT8",
    )
    p.add_argument(
        "--name", default=defaults.MIXED_VARIANT_NAME, help="name of the variant to write"
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ws = workspace_for_work(args.workspace)
    check_json(args.coco, "COCO annotations", "give a COCO instances JSON")
    check_calibration_ranges(ws)
    analysis = analyse_layers(
        ws, target=args.target, count=args.analysis_images, progress=ProgressBar("analysing")
    )
    print(
        f"per-layer INT8 error, {analysis['images']} images, {analysis['seconds']} s "
        "(worst first; SQNR in dB, higher is better)"
    )
    rows = [
        (b["block"][:40], b["op_type"], b["score_db"], b["weight_sqnr_db"])
        for b in analysis["blocks"][:15]
    ]
    print(table(["block", "op", "worst local SQNR", "weight SQNR"], rows))
    report = search_mixed_precision(
        ws,
        args.images,
        labels_dir=args.labels,
        coco_json=args.coco,
        target_drop=args.target_drop,
        target=args.target,
        max_fraction=args.max_fraction,
        variant_name=args.name,
        analysis=analysis,
        runner_factory=make_runner,
        progress=ProgressBar("searching"),
    )
    print(
        f"\nsearch ({report['metric']}, FP32 {report['fp32']}, target drop "
        f"<= {report['target_drop']}):"
    )
    print(
        table(
            ["trial", "compute ops float", report["metric"], "drop", "p50 ms", "passes"],
            [
                (
                    t["trial"],
                    t["compute_ops_float"],
                    t["value"],
                    t["drop"],
                    t["latency_p50_ms"],
                    "yes" if t["passes"] else "no",
                )
                for t in report["trials"]
            ],
        )
    )
    state = "reached" if report["reached"] else "NOT reached (best trial kept)"
    print(
        f"\n{report['variant']}: {report['metric']} {report['int8']} vs FP32 {report['fp32']} "
        f"({state}), {report['layers_kept']} of {report['compute_ops']} compute ops kept out "
        f"of INT8, {report['seconds']} s"
    )
    full = {**report, "analysis_full": analysis}
    write_json(ws.path("results", f"debug-precision-{report['variant']}.json"), full)
    save_json(args.json_out, report)
    return 0
