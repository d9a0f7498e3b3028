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
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from app.backends.registry import BACKENDS
from app.core.errors import UserError


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
        window.state.set_spec(inspect_model(args.model))
    variants = [v.strip() for v in (args.variants or "fp32").split(",") if v.strip()]
    if not (args.source and window.state.spec is not None):
        if args.exit_after:
            app.processEvents()
            if args.screenshot:
                window.grab().save(str(args.screenshot))
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

    def begin_round() -> bool:
        marks.update(process=time.process_time(), gui=time.thread_time())
        if rounds:
            heartbeat.resume()
        else:
            heartbeat.start()
        round_starts.append(heartbeat.elapsed())
        return panel.start(max_frames=args.frames)

    def finished(summary: dict[str, Any]) -> None:
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
        app.processEvents()
        calib_panel = window.calibration_panel
        if background:
            background["still_running_at_end"] = calib_panel.job is not None
            if calib_panel.job is not None:
                calib_panel.cancel()
        if args.screenshot:
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(args.screenshot))
        summary = combine_rounds(rounds) if rounds else panel.summary()
        report = build_report(panel, summary, heartbeat, variants, args)
        report["cpu_ms_per_frame"] = cpu_per_frame(cpu, summary)
        report["gui_stalls"]["round_starts_s"] = round_starts
        if background:
            report["background_calibration"] = background
        if windows:
            report.update(throughput_report(windows, rounds, paced=not args.fast))
        if args.report:
            from app.core.atomic import write_json

            write_json(Path(args.report), report)
        keys = ("frames_processed", "frames_shown", "frames_dropped", "fps", "shown_fps")
        keys += ("gui_blocked_max_ms", "fps_vs_backend", "fps_vs_headless_pipeline")
        print(json.dumps({k: report[k] for k in keys if k in report}))
        errors = [panel.messages.text("run")] if panel.messages.has("run") else []
        if errors or panel.messages.has("start"):
            outcome["code"] = 2
            print("; ".join(errors) or panel.messages.text("start"), file=sys.stderr)
        if args.exit_after:
            window.close()
            app.quit()

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


def combine_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary for several plays: counts and CPU summed, FPS the median round's."""
    out = dict(rounds[-1])
    for key in ("frames_processed", "frames_shown", "frames_dropped", "frames_not_shown"):
        out[key] = sum(r.get(key, 0) for r in rounds)
    out["fps"] = round(statistics.median(r["fps"] for r in rounds), 2)
    out["shown_fps"] = round(statistics.median(r.get("shown_fps", 0.0) for r in rounds), 2)
    out["round_fps"] = [r["fps"] for r in rounds]
    cpu: dict[str, float] = {}
    for r in rounds:
        for k, v in r.get("stream", {}).get("cpu_s", {}).items():
            cpu[k] = cpu.get(k, 0.0) + v
    out["stream"] = dict(out.get("stream", {}), cpu_s=cpu)
    return out


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


def cpu_per_frame(cpu: dict[str, float], summary: dict[str, Any]) -> dict[str, float]:
    """Where the CPU went, in CPU-milliseconds per processed frame: the GUI thread, the stream's
    own threads, and the rest of the process (the inference runtime's worker threads)."""
    frames = max(1, summary.get("frames_processed", 0))
    threads = dict(summary.get("stream", {}).get("cpu_s", {}))
    threads["gui_thread"] = cpu["gui_thread_s"]
    threads["runtime_workers"] = cpu["process_s"] - sum(threads.values())
    threads["process"] = cpu["process_s"]
    return {k: round(v * 1000.0 / frames, 2) for k, v in threads.items()}


def build_report(
    panel: Any, summary: dict[str, Any], heartbeat: Any, variants: list[str], args: Any
) -> dict[str, Any]:
    """The scripted run's figures: counts, FPS, p50 per stage per variant, longest GUI stall."""
    stages: dict[str, dict[str, float]] = {}
    processor = panel.processor
    for name, pipe in zip(variants, processor.pipelines if processor else []):
        stages[name] = {k: v["p50"] for k, v in pipe.timer.summary().items()}
    first = next(iter(stages.values()), {})
    per_frame = sum(first.get(k, 0.0) for k in ("preprocess_ms", "infer_ms", "postprocess_ms"))
    return {
        "model": panel.state.spec.path if panel.state.spec else None,
        "source": args.source,
        "variants": variants,
        "backend": args.backend,
        "fast": bool(args.fast),
        "runners": summary.get("runners", []),
        "frames_shown": summary["frames_shown"],
        "frames_processed": summary["frames_processed"],
        "frames_dropped": summary["frames_dropped"],
        "frames_not_shown": summary.get("frames_not_shown", 0),
        "fps": summary["fps"],
        "shown_fps": summary.get("shown_fps", 0.0),
        "round_fps": summary.get("round_fps", [summary["fps"]]),
        "view_px": list(panel.control.max_size) if panel.control else None,
        "pipeline_fps_p50": round(1000.0 / per_frame, 2) if per_frame else 0.0,
        "stage_p50_ms": first,
        "stage_p50_ms_per_variant": stages,
        "gui_blocked_max_ms": round(heartbeat.max_stall_ms, 2),
        "gui_stalls": heartbeat.stats(),
        "stream": {k: v for k, v in summary.get("stream", {}).items() if k != "skipped"},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


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


def throughput_report(
    windows: list[dict[str, Any]], rounds: list[dict[str, Any]], paced: bool = False
) -> dict:
    """Each round's live FPS as a share of the mean infer-only throughput of the two windows
    around it; the median of those shares is the run's figure. With `paced` playback (a video
    at its own frame rate) the live FPS is the source's, not a throughput: no share is given."""
    rates = [w.get("throughput_fps", 0.0) for w in windows]
    shares = _shares(rates, rounds)
    if not shares:
        return {}
    good = [x for x in rates if x > 0]
    out = {
        "backend_infer_fps": round(statistics.median(good), 2),
        "backend_infer_fps_windows": [round(x, 2) for x in rates],
        "backend_infer_ms": next(w["latency_ms"] for w in reversed(windows) if w),
    }
    if paced:
        out["fps_vs_backend_note"] = (
            "playback was paced by the source's own frame rate, so FPS is not a throughput; "
            "run with --fast to compare with the backend"
        )
        return out
    out["fps_vs_backend_rounds"] = [round(x, 3) for x in shares]
    out["fps_vs_backend"] = round(statistics.median(shares), 3)
    # the GUI's own cost: the view against the same pipeline run headless on the same source
    headless = [w.get("headless_pipeline_fps", 0.0) for w in windows]
    if any(headless):
        out["headless_pipeline_fps_windows"] = headless
        by_pipeline = _shares(headless, rounds)
        if by_pipeline:
            out["fps_vs_headless_pipeline_rounds"] = [round(x, 3) for x in by_pipeline]
            out["fps_vs_headless_pipeline"] = round(statistics.median(by_pipeline), 3)
    return out


def _shares(rates: list[float], rounds: list[dict[str, Any]]) -> list[float]:
    """Each round's FPS over the mean of the two measurement windows around it."""
    shares = []
    for k, r in enumerate(rounds):
        around = [x for x in rates[k : k + 2] if x > 0]
        if around and r["fps"] > 0:
            shares.append(r["fps"] / (sum(around) / len(around)))
    return shares


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
