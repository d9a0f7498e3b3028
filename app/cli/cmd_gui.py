"""`int8-studio gui`: the desktop app, and a scripted mode that plays N frames, saves a
screenshot and a JSON report (frames shown and dropped, FPS, stage p50s, longest GUI stall)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.backends.registry import BACKENDS


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("gui", help="open the desktop app (or script it for a screenshot/report)")
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
    p.set_defaults(func=run)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="int8-studio gui")
    register(parser.add_subparsers())
    return run(parser.parse_args(["gui", *argv]))


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
    if args.source and window.state.spec is not None:
        panel = window.compare_panel if len(variants) > 1 else window.live_panel
        window.tabs.setCurrentWidget(panel)
        panel.source.setText(args.source)
        panel.set_variants(variants[:2])
        panel.backend.clear()
        panel.backend.addItem(args.backend, args.backend)
        panel.realtime.setChecked(not args.fast)
        heartbeat = Heartbeat(parent=window)

        def finished(summary: dict[str, Any]) -> None:
            heartbeat.stop()
            app.processEvents()
            if args.screenshot:
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                window.grab().save(str(args.screenshot))
            report = build_report(panel, summary, heartbeat.max_stall_ms, variants, args)
            if args.report:
                from app.core.atomic import write_json

                write_json(Path(args.report), report)
            print(
                json.dumps(
                    {
                        k: report[k]
                        for k in ("frames_shown", "frames_dropped", "fps", "gui_blocked_max_ms")
                    }
                )
            )
            errors = [panel.messages.text(k) for k in panel.messages.keys() if k == "run"]  # noqa: SIM118
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
    elif args.exit_after:
        app.processEvents()
        if args.screenshot:
            window.grab().save(str(args.screenshot))
        window.close()
        return 0
    app.exec()
    return int(outcome["code"])


def build_report(
    panel: Any, summary: dict[str, Any], stall_ms: float, variants: list[str], args: Any
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
        "runners": summary.get("runners", []),
        "frames_shown": summary["frames_shown"],
        "frames_processed": summary["frames_processed"],
        "frames_dropped": summary["frames_dropped"],
        "fps": summary["fps"],
        "pipeline_fps_p50": round(1000.0 / per_frame, 2) if per_frame else 0.0,
        "stage_p50_ms": first,
        "stage_p50_ms_per_variant": stages,
        "gui_blocked_max_ms": round(stall_ms, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
