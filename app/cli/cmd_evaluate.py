"""`int8-studio evaluate`: accuracy and latency of each variant on a folder of images."""

from __future__ import annotations

import argparse
import sys

from app.backends.factory import make_runner
from app.cli.arguments import (
    add_allow_stale,
    add_backend,
    add_eval_truth,
    add_json,
    add_target_drop,
    add_variants,
    add_workspace,
    layout_line,
    workspace_variants,
)
from app.cli.output import ProgressBar, run_notes, save_json, table
from app.cli.preflight import check_json, workspace_for_work
from app.core.atomic import write_json
from app.core.eval.evaluate import evaluate
from app.core.eval.recommend import across_backends, recommend, recommendation_lines
from app.core.eval.reports import (
    all_backends,
    interval_of,
    labels_note,
    load_results,
    with_interval,
)
from app.core.model.staleness import refuse_stale


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("evaluate", help="accuracy and latency of each variant")
    add_workspace(p)
    add_eval_truth(p)
    add_variants(p, every_recorded=True)
    add_backend(p)
    add_target_drop(p)
    add_allow_stale(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ws = workspace_for_work(args.workspace)
    args.variants = workspace_variants(ws, args.variants)
    check_json(args.coco, "COCO annotations", "give a COCO instances JSON")
    for warning in refuse_stale(ws, args.variants, allow=args.allow_stale):
        print(f"warning: {warning}", file=sys.stderr)
    if line := layout_line(ws, args.variants, args.backend):
        print(f"note: {line}", file=sys.stderr)
    report = evaluate(
        ws,
        args.images,
        labels_dir=args.labels,
        coco_json=args.coco,
        variants=args.variants,
        backend=args.backend,
        runner_factory=make_runner,
        progress=ProgressBar("evaluating"),
    )
    write_json(ws.evaluation_path(args.backend), report)
    print_report(report)
    # with the workspace's benchmark merged in where it measured the same model
    for line in recommendation_lines(
        load_results(ws.evaluation_path(args.backend)), None, args.target_drop
    ):
        print(line)
    # the workspace's evaluations of the same images on other backends: whose choice is fastest
    combined = all_backends(ws.result_files())
    if combined is not None and args.backend in {v.get("backend") for v in combined["variants"]}:
        if overall := across_backends(recommend(combined, None, args.target_drop)):
            print(overall)
    save_json(args.json_out, report)
    return 0


def print_report(report: dict) -> None:
    keys: list[str] = []
    for v in report["variants"]:
        keys += [k for k in v["metrics"] if k not in keys]
    rows = [
        (
            v["name"],
            v["provider"].removesuffix("ExecutionProvider"),
            *[with_interval(v["metrics"].get(k, ""), interval_of(v, k)) for k in keys],
            v["latency_ms"]["p50"],
            v["latency_ms"]["p99"],
        )
        for v in report["variants"]
    ]
    print(
        f"{report['task']} on {report['images']} images"
        + ("" if report.get("labelled") else " (no labels: agreement with fp32)")
    )
    print(table(["variant", "provider", *keys, "p50 ms", "p99 ms"], rows))
    fp32 = next((v for v in report["variants"] if v["name"] == "fp32"), None)
    for v in report["variants"]:
        diffs = [
            f"{k} {with_interval(round(v['metrics'][k] - fp32['metrics'][k], 2), ci)}"
            for k, ci in (v.get("diff_ci") or {}).items()
            if fp32 and k in v["metrics"] and k in fp32["metrics"]
        ]
        if diffs:
            print(f"{v['name']} - fp32: " + ", ".join(diffs))
    if report.get("intervals"):
        print(f"[lo, hi]: 95% interval, bootstrap over images ({report['intervals']['resamples']})")
    for v in report["variants"]:
        for line in run_notes(v, v["name"]):
            print(line)
    for name, why in report.get("refused", {}).items():
        print(f"not evaluated: {name}: {why}")
    if report.get("preprocessing_alarm"):
        print(f"warning: {report['preprocessing_alarm']}")
    if report.get("calibration_overlap"):
        print(f"warning: {report['calibration_overlap']}")
    if note := labels_note(report):
        print(f"note: {note}")
    for s in report.get("skipped", []):
        print(f"skipped: {s['source']}: {s['reason']}")
