"""Scripted mode of the desktop app: play N frames, then save a screenshot and a JSON report
(frames shown and dropped, FPS, stage p50s, the backend's own infer-only throughput, and the GUI
thread's longest stall), optionally with a calibration running in the background worker.

`python -m app.gui.scripted --model M --source S --frames 200 --fast --report r.json --exit-after`
(`int8-studio gui` takes the same flags when `app/cli/cmd_gui.py` delegates here).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from app.backends.registry import BACKENDS


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
        help="infer-only iterations timed after the run (0: skip the measurement)",
    )


def run(args: argparse.Namespace) -> int:
    """Open the window; with --source, play it and (optionally) report, screenshot and exit."""
    from app.core.modelspec import inspect_model
    from app.gui.app import application
    from app.gui.main_window import MainWindow
    from app.gui.widgets import Heartbeat

    app = application()
    window = MainWindow(workspace_root=args.workspace)
    window.show()
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

    def finished(summary: dict[str, Any]) -> None:
        heartbeat.stop()
        app.processEvents()
        calib_panel = window.calibration_panel
        if background:
            background["still_running_at_end"] = calib_panel.job is not None
            if calib_panel.job is not None:
                calib_panel.cancel()
        if args.screenshot:
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(args.screenshot))
        report = build_report(panel, summary, heartbeat, variants, args)
        if background:
            report["background_calibration"] = background
        if args.throughput_iterations > 0 and len(variants) == 1:
            report.update(measure_throughput(panel, args, report["fps"]))
        if args.report:
            from app.core.atomic import write_json

            write_json(Path(args.report), report)
        keys = ("frames_shown", "frames_dropped", "fps", "gui_blocked_max_ms", "fps_vs_backend")
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
    heartbeat.start()
    if not panel.start(max_frames=args.frames):
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
        "fps": summary["fps"],
        "pipeline_fps_p50": round(1000.0 / per_frame, 2) if per_frame else 0.0,
        "stage_p50_ms": first,
        "stage_p50_ms_per_variant": stages,
        "gui_blocked_max_ms": round(heartbeat.max_stall_ms, 2),
        "gui_stalls": heartbeat.stats(),
        "stream": {k: v for k, v in summary.get("stream", {}).items() if k != "skipped"},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def measure_throughput(panel: Any, args: Any, live_fps: float) -> dict[str, Any]:
    """The runner's own infer-only throughput, same variant, backend and thread settings as the
    live run, on a real preprocessed frame of the source; and live FPS as a share of it."""
    from app.backends.factory import make_runner
    from app.core.bench import time_runner
    from app.core.preprocess import Preprocessor
    from app.core.sources import FrameSource
    from app.gui.workers import lower_thread_priority

    processor = panel.processor
    spec = panel.state.spec
    frame = next(iter(FrameSource(args.source, max_frames=1)))
    feed, _ = Preprocessor(spec.preprocess)(frame.image)
    runner = make_runner(
        processor.backend,
        processor.models[0],
        threads=processor.threads(),
        options=processor.options(),
    )
    timed: dict[str, Any] = {}

    def measure() -> None:  # on a worker-priority thread, as the live run's inference was
        lower_thread_priority()
        with runner:
            timed.update(time_runner(runner, feed.copy(), args.throughput_iterations, warmup=10))

    thread = threading.Thread(target=measure, name="throughput")
    thread.start()
    thread.join()
    backend_fps = timed["throughput_fps"]
    return {
        "backend_infer_fps": backend_fps,
        "backend_infer_ms": timed["latency_ms"],
        "fps_vs_backend": round(live_fps / backend_fps, 3) if backend_fps else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.gui.scripted", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
