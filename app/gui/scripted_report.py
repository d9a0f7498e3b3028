"""The scripted run's outputs: its JSON report (counts, FPS, stage p50s, throughput shares, the
compare run's agreement, skipped files) and its screenshot, each written atomically; a file that
cannot be written is a UserError naming it, never a half-written file."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from app.core.atomic import atomic_path, write_json
from app.core.errors import UserError


def save_screenshot(widget: Any, path: str | Path) -> None:
    """A PNG of `widget`, renamed into place only once Qt has written all of it."""
    target = Path(path)
    try:
        with atomic_path(target) as tmp:
            # Qt reports a failed write only through this bool (full disk, no permission)
            if not widget.grab().save(str(tmp), "PNG"):
                raise UserError(
                    f"{target}: the screenshot could not be written (disk full or not "
                    "writable?); nothing was kept"
                )
    except OSError as exc:
        raise UserError(
            f"{target}: the screenshot could not be written ({exc.strerror or exc}); nothing "
            "was kept"
        ) from exc


def save_report(path: str | Path, report: dict[str, Any]) -> None:
    """The report as JSON, atomically; a full disk or a folder in the way is a UserError."""
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{target}: is a folder; name a file for --report, e.g. report.json")
    try:
        write_json(target, report)
    except OSError as exc:
        raise UserError(
            f"{target}: the report could not be written ({exc.strerror or exc}); free some "
            "space or choose another --report path (nothing half-written was kept)"
        ) from exc


def comparison_report(panel: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """What a compare run adds (the agreement and its parts) and the files every run skipped."""
    out: dict[str, Any] = {
        "skipped": [
            {"source": str(source), "reason": str(reason)}
            for source, reason in summary.get("stream", {}).get("skipped", [])
        ]
    }
    comparison = getattr(panel.processor, "comparison", None)
    if comparison is not None:  # the last round's (each round compares afresh)
        out["agreement"] = round(comparison.agreement, 4)
        out["comparison"] = comparison.summary()
    return out


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
