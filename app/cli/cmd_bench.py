"""`int8-studio bench`: latency of every variant on every backend, as a table, JSON and a plot."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.factory import runner_for_pipeline
from app.backends.registry import status_of
from app.backends.tensorrt.workspace_engines import engine_for_variant
from app.cli.arguments import (
    add_allow_stale,
    add_backends,
    add_json,
    add_target_drop,
    add_tf32,
    add_variants,
    add_workspace,
    file_to_read,
    file_to_write,
    layout_line,
    non_negative_int,
    positive_int,
    workspace_variants,
)
from app.cli.output import ProgressBar, run_notes, save_json, table
from app.cli.preflight import workspace_for_work
from app.core import defaults
from app.core.atomic import write_bytes, write_json
from app.core.errors import UserError
from app.core.eval.bench import TURNS, device_info, time_in_turns
from app.core.eval.evaluate import variant_model_path
from app.core.eval.recommend import Recommendation, across_backends
from app.core.eval.recommend import recommend as recommend_variants
from app.core.eval.reports import bench_as_report, load_results
from app.core.frames.imageio import ImageReadError, read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.staleness import refuse_stale
from app.core.quant.calibration import latest_calibration
from app.core.safe_json import load_json


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("bench", help="latency per variant and backend (p50/p90/p99, throughput)")
    add_workspace(p)
    add_variants(p, every_recorded=True)
    add_backends(p)
    p.add_argument("--iterations", type=positive_int, default=defaults.BENCH_ITERATIONS)
    p.add_argument("--warmup", type=non_negative_int, default=defaults.BENCH_WARMUP)
    p.add_argument(
        "--image",
        type=file_to_read,
        help="a photo to feed (default: the first calibration image, else a synthetic frame)",
    )
    p.add_argument("--threads", type=positive_int, help="CPU threads for ORT (default: all cores)")
    add_tf32(p)
    add_allow_stale(p)
    add_target_drop(p)
    add_json(p)
    p.add_argument("--plot", type=file_to_write, help="write a PNG bar chart of p50 latency")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ws = workspace_for_work(args.workspace)
    args.variants = workspace_variants(ws, args.variants)
    spec = ws.spec()
    for warning in refuse_stale(ws, args.variants, allow=args.allow_stale):
        print(f"warning: {warning}", file=sys.stderr)
    image, fed = _feed_image(ws, args.image, spec.preprocess.size)
    feeds = {
        fused: Preprocessor(spec.preprocess, fused=fused)(image)[0].copy()
        for fused in (False, True)
    }
    rows, results = [], []
    progress = ProgressBar("benchmarking")
    for k, backend in enumerate(args.backends):
        status = status_of(backend)
        if not status.available:
            print(f"skipping {backend}: {status.reason}", file=sys.stderr)
            results.append({"backend": backend, "skipped": status.reason})
            continue
        if line := layout_line(ws, args.variants, backend):
            print(f"note: {line}", file=sys.stderr)
        what = ", ".join(args.variants) if len(args.variants) <= 4 else "the variants"
        progress(k / len(args.backends), f"{what} on {backend}")
        with ExitStack() as stack:
            opened = _open_runners(ws, spec, args, backend, feeds, stack, results)
            progress((k + 0.5) / len(args.backends), f"timing them in turns on {backend}")
            timed = time_in_turns(
                [(runner, feeds[fused]) for _, runner, fused in opened], args.iterations, 0
            )
            for (name, runner, fused), r in zip(opened, timed, strict=True):
                info = runner.describe()
                lat = r["latency_ms"]
                results.append(
                    {
                        "variant": name,
                        "backend": backend,
                        "provider": info["provider"],
                        "fallback": info["fallback"],
                        "caveat": info["caveat"],
                        "sha256": ws.variant_sha256(name),
                        "fused_io": fused,
                        **r,
                    }
                )
                rows.append(
                    (
                        name,
                        backend,
                        info["provider"].removesuffix("ExecutionProvider"),
                        lat["p50"],
                        lat["p90"],
                        lat["p99"],
                        lat["mean"],
                        r["throughput_fps"],
                    )
                )
    progress(1.0, "done")
    if not rows:  # every variant or backend skipped: keep the last benchmark that timed any
        raise UserError(
            f"nothing was timed (every variant or backend was skipped, above); "
            f"{ws.bench_path()} is left as it was"
        )
    report = {
        "model_sha256": spec.sha256,
        "device": device_info(),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "input_shape": list(feeds[False].shape),
        "input": fed,
        "timing": f"variants timed in turns ({TURNS} rounds) per backend",
        "results": results,
    }
    print(
        table(
            ["variant", "backend", "provider", "p50 ms", "p90 ms", "p99 ms", "mean ms", "fps"], rows
        )
    )
    for r in results:
        for line in run_notes(r, f"{r['variant']} on {r['backend']}"):
            print(line)
    base = {r[1]: r[3] for r in rows if r[0] == "fp32"}
    for r in rows:
        if r[0] != "fp32" and base.get(r[1]):
            print(f"{r[0]} / fp32 on {r[1]}: {r[3] / base[r[1]]:.2f}x the latency")
    write_json(ws.bench_path(), report)
    verdicts = []
    for backend in dict.fromkeys(r[1] for r in rows):  # the truth about speed, per backend
        evaluation = ws.evaluation_path(backend)
        judged = _judged(evaluation, report, backend, args.target_drop)
        if judged is None:
            continue
        verdicts.append(judged)
        print("\n".join(judged.lines))
        if judged.metric:  # judged on the evaluation: name what it did not score
            evaluated = {str(v.get("name")) for v in judged.rows}
            for name in dict.fromkeys(r[0] for r in rows if r[1] == backend):
                if name not in evaluated:
                    print(f"{name}: not in {evaluation.name}; evaluate it to judge")
    if overall := across_backends(verdicts):
        print(overall)
    save_json(args.json_out, report)
    if args.plot:
        plot_latency(rows, Path(args.plot))
    return 0


def _judged(
    evaluation: Path, bench: dict[str, Any], backend: str, target_drop: float
) -> Recommendation | None:
    """`recommend` for `backend`: on the workspace's evaluation with this benchmark merged in
    (accuracy known), else on the benchmark alone (speed only)."""
    report = bench_as_report(bench)
    if evaluation.is_file():
        try:
            report = load_results(evaluation)
        except UserError as exc:
            print(f"note: {exc}", file=sys.stderr)
    found = recommend_variants(report, None, target_drop)
    return next((r for r in found if r.backend == backend), None)


def _open_runners(
    ws: Any,
    spec: Any,
    args: argparse.Namespace,
    backend: str,
    feeds: dict[bool, np.ndarray],
    stack: ExitStack,
    results: list[dict[str, Any]],
) -> list[tuple[str, Any, bool]]:
    """(variant, open and warmed-up runner, fused I/O) of each variant that runs on `backend`;
    one that cannot (missing, no engine, refused by the runtime) is reported and left out, and
    the others are still timed."""
    opened = []
    for name in args.variants:
        try:
            path = (
                engine_for_variant(ws, name)
                if backend == "tensorrt"
                else variant_model_path(ws, name)
            )
            runner, fused = runner_for_pipeline(
                backend,
                path,
                spec,
                cache_dir=ws.path("engines", "fused"),
                threads=args.threads,
                options={"tf32": args.tf32},
            )
            stack.enter_context(runner)
            for _ in range(args.warmup or 1):  # a runtime's first-result check runs here too
                runner.infer(feeds[fused])
        except UserError as exc:
            print(f"skipping {name} on {backend}: {exc}", file=sys.stderr)
            results.append({"variant": name, "backend": backend, "skipped": str(exc)})
            continue
        opened.append((name, runner, fused))
    return opened


def _feed_image(ws: Any, image: Path | None, size: list[int]) -> tuple[np.ndarray, str]:
    """(frame, what it is): `image`, else the first readable image of the workspace's latest
    calibration (real content: a runtime's first-result check on random noise can refuse a
    graph that computes photos right), else a synthetic frame."""
    if image is not None:
        try:
            return read_image(image), str(image)
        except ImageReadError as exc:
            raise UserError(f"{image}: {exc}; give another photo (or none)") from exc
    try:
        used = load_json(latest_calibration(ws) / "meta.json").get("images_used") or []
    except (UserError, OSError, ValueError, AttributeError):
        used = []
    for candidate in used[:8]:
        try:
            return read_image(Path(candidate)), str(candidate)
        except (ImageReadError, OSError, TypeError):
            continue
    return _synthetic(size), "synthetic frame (random pixels)"


def _synthetic(size: list[int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (size[0], size[1], 3), dtype=np.uint8)


def plot_latency(rows: list[tuple], path: Path) -> None:
    """Bar chart of p50 (with p99 whisker) per variant/backend, via pyqtgraph offscreen; written
    atomically (a failed write keeps nothing; main.py says so in one line naming the file)."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    app = pg.mkQApp()
    pg.setConfigOptions(antialias=True, foreground="k", background="w")
    win = pg.GraphicsLayoutWidget()
    try:
        win.resize(max(500, 160 * len(rows)), 480)
        plot = win.addPlot(title="INT8 Studio bench: p50 latency (whisker: p99)")
        x = np.arange(len(rows), dtype=float)
        p50 = np.array([r[3] for r in rows], dtype=float)
        p99 = np.array([r[5] for r in rows], dtype=float)
        plot.addItem(pg.BarGraphItem(x=x, height=p50, width=0.6, brush="#4a7bd0"))
        plot.addItem(
            pg.ErrorBarItem(x=x, y=p50, top=p99 - p50, bottom=np.zeros_like(p50), beam=0.2)
        )
        ticks = [(float(i), f"{r[0]} / {r[1]}") for i, r in enumerate(rows)]
        plot.getAxis("bottom").setTicks([ticks])
        plot.setLabel("left", "milliseconds")
        plot.setYRange(0, float(p99.max()) * 1.1 if len(rows) else 1)
        plot.setXRange(-0.6, len(rows) - 0.4)
        win.show()
        app.processEvents()
        # Encoded in memory, then written atomically by Python: Qt's own file writing reports
        # a full disk only by returning False (and libpng chatter on stderr).
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not win.grab().save(buffer, "PNG"):
            raise UserError(f"{path}: the plot could not be drawn; nothing was written")
        write_bytes(path, bytes(data.data()))
    finally:
        win.close()
    print(f"wrote {path}", file=sys.stderr)
