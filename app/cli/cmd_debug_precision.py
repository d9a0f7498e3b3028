"""`int8-studio debug-precision`: per-layer INT8 error table and automatic mixed precision."""

from __future__ import annotations

import argparse
from typing import Any

from app.backends.factory import make_runner
from app.cli.arguments import (
    add_eval_truth,
    add_json,
    add_target,
    add_target_drop,
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
from app.core.quant.targets import variant_name


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "debug-precision", help="find the layers INT8 hurts and keep the fewest of them in float"
    )
    add_workspace(p)
    add_eval_truth(p)
    add_target_drop(p)
    add_target(p)
    p.add_argument("--analysis-images", type=positive_int, default=defaults.ANALYSIS_IMAGES)
    p.add_argument(
        "--max-fraction",
        type=probability,
        default=defaults.MAX_FLOAT_FRACTION,
        help="most compute ops that may stay out of INT8 (those the target always keeps "
        "float included)",
    )
    p.add_argument(
        "--pool",
        action="append",
        default=[],
        metavar="DIR_OR_VIDEO",
        help="more images to judge agreement with FP32 on, no labels needed: a folder or a "
        "video (every 10th frame); repeat for several. The --images folder is always in it; "
        "calibration images are left out; every 4th image is held out to check the result",
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        help="agreement with FP32 a trial must reach on the search images (default: 92 mAP50-95 "
        "for detectors, 98%% top-1 for classifiers)",
    )
    p.add_argument(
        "--name",
        help=f"name of the variant to write (default: {defaults.MIXED_VARIANT_NAME} with the "
        "target's suffix, as quantize names its variants: int8-mp, int8-mp-trt, int8-mp-ov)",
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
        f"per-layer INT8 error, {analysis['images']} images, {analysis['seconds']} s (worst "
        "first: the model's output with that block alone quantized; SQNR in dB, higher is better)"
    )
    rows = [
        (
            _short(b["block"]),
            b["op_type"],
            b.get("output_sqnr_db"),
            b["score_db"],
            b["weight_sqnr_db"],
        )
        for b in analysis["blocks"][:15]
    ]
    headers = ["block", "op", "output SQNR", "worst local SQNR", "weight SQNR"]
    print(table(headers, rows))
    report = search_mixed_precision(
        ws,
        args.images,
        labels_dir=args.labels,
        coco_json=args.coco,
        pool=args.pool,
        target_drop=args.target_drop,
        min_agreement=args.min_agreement,
        target=args.target,
        max_fraction=args.max_fraction,
        # one name per layout, as the GUI's Precision tab: a search for another target does not
        # overwrite the variant made for this one
        variant_name=args.name or variant_name(defaults.MIXED_VARIANT_NAME, args.target),
        analysis=analysis,
        runner_factory=make_runner,
        progress=ProgressBar("searching"),
    )
    print_report(report)
    full = {**report, "analysis_full": analysis}
    write_json(ws.path("results", f"debug-precision-{report['variant']}.json"), full)
    save_json(args.json_out, report)
    return 0


def _short(name: str, width: int = 56) -> str:
    """A block name that fits a table column: its start and end, which tell blocks apart."""
    return name if len(name) <= width else f"{name[: width // 2 - 2]}...{name[-(width // 2 - 1) :]}"


def print_report(report: dict[str, Any]) -> None:
    """The trials on the search images, then FP32, the default recipe and the chosen graph on
    the held-out images the search never saw."""
    metric, lmetric = report["metric"], report.get("labelled_metric")
    img = report["images"]
    print(
        f"\nsearch on {img['search_images']} images ({img['search_labelled']} labelled; "
        f"{img['search_images_available']} available), {metric} FP32 {report['fp32']}"
        + (f", {lmetric} FP32 {report['fp32_labelled']}" if lmetric else "")
        + f"; passes: {metric} >= {report['min_agreement']}"
        + (f" and {lmetric} drop <= {report['target_drop']}" if lmetric else "")
        + f"; at most {report['cap']} of {report['compute_ops']} compute ops float"
    )
    print(
        table(
            ["trial", "ops float", metric, lmetric or "-", "drop", "p50 ms", "in cap", "passes"],
            [
                (
                    t["trial"],
                    t["compute_ops_float"],
                    t["value"],
                    t.get("labelled", "-"),
                    t.get("labelled_drop", t["drop"]),
                    t["latency_p50_ms"],
                    "yes" if t["within_cap"] else "no",
                    "yes" if t["passes"] else "no",
                )
                for t in report["trials"]
            ],
        )
    )
    held = report["held_out"]
    print(
        f"\nheld out (never seen by the search): {img['held_out_images']} images "
        f"({img['held_out_labelled']} labelled), 95% bootstrap intervals"
    )
    rows = []
    for role, name in (("fp32", "FP32"), ("default", "default recipe"), ("chosen", "chosen")):
        entry = held[role]
        rows.append(
            (
                name if role != "chosen" else f"{report['variant']} (chosen)",
                {
                    "fp32": 0,
                    "default": entry.get("compute_ops_float"),
                    "chosen": report["layers_kept"],
                }[role],
                *(_with_ci(entry, m) for m in (metric, lmetric) if m),
            )
        )
    print(table(["variant", "ops float", metric, *([lmetric] if lmetric else [])], rows))
    over = report.get("closer_over_cap")
    if over:
        print(
            f"\n'{over['trial']}' was closer to FP32 ({metric} {over['value']}) with "
            f"{over['compute_ops_float']} compute ops float, over the cap of {report['cap']}: "
            "raise --max-fraction to allow it"
        )
    state = "reached" if report["reached"] else "NOT reached (closest trial within the cap kept)"
    print(
        f"\n{report['variant']}: search {metric} {report['int8']} ({state}), held-out "
        f"{held['chosen']['metrics'][metric]}, {report['layers_kept']} of "
        f"{report['compute_ops']} compute ops kept out of INT8, {report['seconds']} s"
    )


def _with_ci(entry: dict[str, Any], metric: str) -> str:
    """'35.1 [33.0, 37.2] (-0.4 [-1.1, 0.3])': value, its interval and the paired difference."""
    value = entry["metrics"].get(metric)
    if value is None:
        return "-"
    ci = (entry.get("metrics_ci") or {}).get(metric)
    diff = (entry.get("diff_ci") or {}).get(metric)
    text = f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    return text + (f" (diff [{diff[0]:+.2f}, {diff[1]:+.2f}])" if diff else "")
