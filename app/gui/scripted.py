"""Scripted mode of the desktop app: play N frames, then save a screenshot and a JSON report
(frames shown and dropped, FPS, stage p50s, the backend's own infer-only throughput, and the GUI
thread's longest stall), optionally with a calibration running in the background worker.

`python -m app.gui.scripted --model M --source S --frames 200 --fast --report r.json --exit-after`
(`int8-studio gui` takes the same flags when `app/cli/cmd_gui.py` delegates here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from app.backends.registry import BACKENDS
from app.core.errors import UserError
from app.gui.scripted_report import (
    build_report,
    combine_rounds,
    comparison_report,
    cpu_per_frame,
    save_report,
    save_screenshot,
    throughput_report,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `gui` command's flags (shared with the CLI's subcommand)."""
    p.add_argument("--model", help=".onnx file or checkpoint folder to open")
    p.add_argument("--source", help="video, image, folder or camera index to play")
    p.add_argument("--variants", default="fp32", help="one (live) or two (compare), e.g. fp32,int8")
    p.add_argument("--backend", default="ort-cpu", choices=BACKENDS)
    p.add_argument("--frames", type=int, help="stop after N frames")
    p.add_argument("--screenshot", help="save a PNG of the whole window when the run ends")
    p.add_argument("--report", help="write a JSON report when the run ends")
    p.add_argument("--exit-after", action="store_true", help="quit when the run ends")
    p.add_argument("--workspace", help="workspace folder (default: per model, user data dir)")
    p.add_argument("--fast", action="store_true", help="play files as fast as possible (no drops)")
    p.add_argument(
        "--background-calibration",
        metavar="DIR",
        help="calibrate on the images in DIR in the background worker while the run plays",
    )
    p.add_argument(
        "--background-count", type=int, default=64, help="images the background calibration uses"
    )
    p.add_argument(
        "--throughput-iterations",
        type=int,
        default=60,
        help="infer-only iterations timed before and after each round (0: skip)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="play the source this many times (the throughput ratio is the rounds' median)",
    )


def run(args: argparse.Namespace) -> int:
    """Open the window; with --source, play it and (optionally) report, screenshot and exit."""
    check_display()
    check_output_paths(args)
    from PySide6.QtCore import QTimer

    from app.core.model.inspection import inspect_model
    from app.gui.main_window import MainWindow
    from app.gui.qt_app import application, settle_heap
    from app.gui.widgets import Heartbeat

    app = application()
    window = MainWindow(workspace_root=args.workspace)
    window.show()
    settle_heap()
    outcome: dict[str, Any] = {"code": 0}
    if args.model:
        # Synchronously on purpose: scripted runs need the spec before anything else happens.
        window.state.open_spec(inspect_model(args.model))  # with the workspace's corrections
    variants = [v.strip() for v in (args.variants or "fp32").split(",") if v.strip()]
    if not (args.source and window.state.spec is not None):
        if args.exit_after:
            app.processEvents()
            try:
                if args.screenshot:
                    save_screenshot(window, args.screenshot)
            finally:
                window.close()
            return 0
        app.exec()
        return 0
    panel = window.compare_panel if len(variants) > 1 else window.live_panel
    window.tabs.setCurrentWidget(panel)
    panel.source.setText(args.source)
    panel.set_variants(variants[:2])
    panel.backend.clear()
    panel.backend.addItem(args.backend, args.backend)
    panel.realtime.setChecked(not args.fast)
    heartbeat = Heartbeat(parent=window)
    background: dict[str, Any] = {}
    measure = args.throughput_iterations > 0 and len(variants) == 1
    rounds: list[dict[str, Any]] = []  # one per play of the source
    round_starts: list[float] = []  # on the heartbeat's clock, to place its stalls
    windows: list[dict[str, Any]] = []  # infer-only throughput before and after each round
    cpu = {"process_s": 0.0, "gui_thread_s": 0.0}
    marks: dict[str, float] = {}
    failures: list[str] = []  # one line each: the run's error, a report or screenshot not written

    def begin_round() -> bool:
        marks.update(process=time.process_time(), gui=time.thread_time())
        if rounds:
            heartbeat.resume()
        else:
            heartbeat.start()
        round_starts.append(heartbeat.elapsed())
        return panel.start(max_frames=args.frames)

    def finished(summary: dict[str, Any]) -> None:
        try:
            next_round(summary)
        except Exception as exc:  # a slot that raises leaves the event loop running for ever
            failures.append(f"error: {one_line(exc)}")
            finish_run()

    def next_round(summary: dict[str, Any]) -> None:
        heartbeat.stop()
        cpu["process_s"] += time.process_time() - marks["process"]
        cpu["gui_thread_s"] += time.thread_time() - marks["gui"]
        rounds.append(summary)
        if measure:
            # the machine's speed drifts: each round is compared with the windows around it
            windows.append(measure_throughput(panel.processor, args))
        if len(rounds) < args.rounds and not panel.messages.has("run"):
            QTimer.singleShot(0, lambda: begin_round() or finish_run())
            return
        finish_run()

    def finish_run() -> None:
        """Write what was asked for and end: never raises (it runs in a Qt slot), and with
        --exit-after always quits, with exit status 2 and one line per failure."""
        try:
            write_outputs()
        except Exception as exc:
            failures.append(f"error: {one_line(exc)}")
        if failures:
            outcome["code"] = 2
            print("\n".join(failures), file=sys.stderr)
        if args.exit_after:
            window.close()
            app.quit()

    def write_outputs() -> None:
        app.processEvents()
        calib_panel = window.calibration_panel
        if background:
            background["still_running_at_end"] = calib_panel.job is not None
            if calib_panel.job is not None:
                calib_panel.cancel()
        if args.screenshot:
            try:
                save_screenshot(window, args.screenshot)
            except UserError as exc:  # the report is still written
                failures.append(f"error: {exc}")
        summary = combine_rounds(rounds) if rounds else panel.summary()
        report = build_report(panel, summary, heartbeat, variants, args)
        report.update(comparison_report(panel, summary))
        report["cpu_ms_per_frame"] = cpu_per_frame(cpu, summary)
        report["gui_stalls"]["round_starts_s"] = round_starts
        if background:
            report["background_calibration"] = background
        if windows:
            report.update(throughput_report(windows, rounds, paced=not args.fast))
        keys = ("frames_processed", "frames_shown", "frames_dropped", "fps", "shown_fps")
        keys += ("gui_blocked_max_ms", "fps_vs_backend", "fps_vs_headless_pipeline", "agreement")
        print(json.dumps({k: report[k] for k in keys if k in report}))
        errors = [panel.messages.text("run")] if panel.messages.has("run") else []
        if errors or panel.messages.has("start"):
            failures.append("; ".join(errors) or panel.messages.text("start"))
        if args.report:
            save_report(args.report, report)

    panel.run_finished.connect(finished)
    app.processEvents()
    if measure:
        windows.append(measure_throughput(throughput_processor(window, variants, args), args))
    if not begin_round():
        print(panel.messages.text("start"), file=sys.stderr)
        if args.exit_after:
            window.close()
            return 2
    if args.background_calibration:
        start_background_calibration(window, args, background)
    app.exec()
    return int(outcome["code"])


def start_background_calibration(window: Any, args: Any, record: dict[str, Any]) -> None:
    """Start a calibration through the calibration panel (as a user would) once frames flow."""
    from PySide6.QtCore import QTimer

    calib = window.calibration_panel
    calib.folder.setText(str(args.background_calibration))
    calib.count.setValue(args.background_count)
    calib.fraction.setValue(0.0)
    calib.method.setCurrentText("minmax")

    def go() -> None:
        control = window.live_panel.control
        record["started_at_frame"] = control.shown if control else 0
        t0 = time.perf_counter()
        if not calib.start():
            keys = calib.messages.keys()  # a method of the message bar, not a dict
            record["error"] = "; ".join(calib.messages.text(k) for k in keys)
            return
        record["images"] = args.background_count
        job = calib.job

        def done() -> None:
            record["seconds"] = round(time.perf_counter() - t0, 2)
            record["finished"] = calib.result is not None
            record["status"] = calib.status.text()

        job.signals.done.connect(done)

    QTimer.singleShot(500, go)


def throughput_processor(window: Any, variants: list[str], args: Any) -> Any:
    """The processor the run will use (same model file, backend, threads and options)."""
    from app.gui.processors import LiveProcessor

    state = window.state
    try:
        path = state.variant_path(variants[0])
    except UserError:
        return None  # the run reports the missing variant itself
    return LiveProcessor(state.spec, [path], args.backend, variants[:1])


def measure_throughput(processor: Any, args: Any) -> dict[str, Any]:
    """The runner's own infer-only throughput, same variant, backend and thread settings as the
    live run, on a real preprocessed frame of the source; and the same runner's headless
    pipeline on the source itself (decode, preprocess, infer, postprocess on three threads, as
    `int8-studio run` does, no drawing): what the view would do without a GUI. An empty dict
    if it cannot run."""
    from app.backends.factory import runner_for_pipeline
    from app.core.eval.bench import time_runner
    from app.core.frames.live import run_live
    from app.core.frames.pipeline import FramePipeline
    from app.core.frames.preprocess import Preprocessor
    from app.core.frames.sources import FrameSource
    from app.gui.workers import lower_thread_priority

    if processor is None:
        return {}
    runner, fused = runner_for_pipeline(
        processor.backend,
        processor.models[0],
        processor.spec,
        threads=processor.threads(),
        options=processor.options(),
    )
    frame = next(iter(FrameSource(args.source, max_frames=1)))
    feed, _ = Preprocessor(processor.spec.preprocess, fused=fused)(frame.image)
    timed: dict[str, Any] = {}

    def measure() -> None:  # on a worker-priority thread, as the live run's inference was
        lower_thread_priority()
        try:
            measured()
        except UserError as exc:  # the live run has said it already (a refused model, ...)
            timed["throughput_error"] = one_line(exc)

    def measured() -> None:
        with runner:
            timed.update(time_runner(runner, feed.copy(), args.throughput_iterations, warmup=10))
            if not args.fast:  # paced playback (a video at its own rate) is not a throughput
                return
            source = FrameSource(
                args.source, max_frames=args.frames or 300, decode_threads=processor.decode_threads
            )
            if source.kind != "camera":  # a camera sets its own pace
                pipe = FramePipeline(processor.spec, runner, fused=fused)
                timed["headless_pipeline_fps"] = round(run_live(source, pipe, draw=False).fps, 2)

    thread = threading.Thread(target=measure, name="throughput")
    thread.start()
    thread.join()
    return timed


def one_line(exc: BaseException) -> str:
    """An error as one line for the terminal: the file it names, and what went wrong."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip().splitlines()
    return text[0] if text and isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


def check_output_paths(args: argparse.Namespace) -> None:
    """Refuse a folder as --report or --screenshot before anything plays."""
    for flag, value in (("--report", args.report), ("--screenshot", args.screenshot)):
        if value and Path(value).is_dir():
            raise UserError(f"{value}: is a folder; name a file for {flag}")


def check_display() -> None:
    """Refuse, with a sentence, where Qt would abort the process with a core dump instead."""
    no_display = (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("QT_QPA_PLATFORM")
    )
    if no_display:
        raise UserError(
            "no display found (DISPLAY is not set): start the app on a desktop, use the "
            "command line (int8-studio --help), or set QT_QPA_PLATFORM=offscreen for a "
            "scripted run"
        )


def main(argv: list[str] | None = None, prog: str = "python -m app.gui.scripted") -> int:
    """Entry point without the CLI: parse the `gui` flags, run, print a user error as one line."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
