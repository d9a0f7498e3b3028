"""Soak test of the live pipeline: a video looped through `run_live` for many frames, watching
resident memory, queue length and latency drift between the first and the last frames.

    python -m app.benchmarks.soak --model M --video V --frames 20000 [--json F]
                                  [--report-every 1000] [--window 1000] [--clip-frames N]

Runs on ONNX Runtime's CPU provider with its default thread count, every frame processed
(`drop_stale=False`) and drawn, as `int8-studio run` does. Per frame it records the inference
time and the total latency (from the moment the decoder handed the frame over to the moment the
annotated frame reached the sink, so queueing counts). Resident memory is VmRSS from
/proc/self/status at the start, after warm-up (the first report), every `--report-every` frames
and at the end; growth is measured from the warm-up sample, because the first frames allocate
ONNX Runtime's arenas and OpenCV's buffers once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.backends.factory import runner_for_pipeline
from app.cli.output import save_json, table
from app.core.errors import CancelToken, UserError
from app.core.eval.bench import device_info
from app.core.frames.live import run_live
from app.core.frames.pipeline import FramePipeline, FrameResult
from app.core.frames.sources import Frame, FrameSource
from app.core.model.inspection import inspect_model
from app.core.timing import percentiles


def rss_kb() -> int:
    """Resident set size of this process in KiB (VmRSS), 0 where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def looped_frames(
    video: str, total: int, clip_frames: int | None, stamps: dict[int, float]
) -> Iterator[Frame]:
    """`total` frames of `video`, reopening it at its end (or every `clip_frames` frames).

    Each frame is renumbered globally and its hand-over time is stored in `stamps` (the sink
    pops it again, so the dict stays at most a few frames long).
    """
    index = 0
    while index < total:
        source = FrameSource(video, max_frames=clip_frames)
        produced = 0
        for frame in source:
            if index >= total:
                return
            stamps[index] = time.perf_counter()
            yield Frame(frame.image, frame.source, index)
            index += 1
            produced += 1
        if produced == 0:
            raise UserError(f"{video}: no frames could be decoded")


class SoakRecorder:
    """The sink: keeps the first and last `window` latencies and periodic RSS samples."""

    def __init__(self, stamps: dict[int, float], window: int, report_every: int, quiet: bool):
        self.stamps = stamps
        self.window = window
        self.report_every = report_every
        self.quiet = quiet
        self.first_infer: list[float] = []
        self.first_total: list[float] = []
        self.last_infer: deque[float] = deque(maxlen=window)
        self.last_total: deque[float] = deque(maxlen=window)
        self.rss: list[tuple[int, int]] = []
        self.frames = 0
        self.t0 = time.perf_counter()

    def __call__(self, frame: Frame, result: FrameResult, annotated: Any) -> None:
        total_ms = (time.perf_counter() - self.stamps.pop(frame.index)) * 1e3
        infer_ms = result.timings_ms.get("infer_ms", 0.0)
        if len(self.first_infer) < self.window:
            self.first_infer.append(infer_ms)
            self.first_total.append(total_ms)
        self.last_infer.append(infer_ms)
        self.last_total.append(total_ms)
        self.frames += 1
        if self.frames % self.report_every == 0:
            kb = rss_kb()
            self.rss.append((self.frames, kb))
            if not self.quiet:
                rate = self.frames / (time.perf_counter() - self.t0)
                print(
                    f"{self.frames:>7} frames  {rate:6.1f} fps  rss {kb / 1024:7.1f} MB  "
                    f"infer p50 {percentiles(self.last_infer)['p50']:.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )


def _window_stats(infer: Any, total: Any) -> dict[str, Any]:
    i, t = percentiles(infer), percentiles(total)
    return {
        "frames": i["n"],
        "infer_ms": {"p50": i["p50"], "p99": i["p99"]},
        "total_ms": {"p50": t["p50"], "p99": t["p99"]},
    }


def soak(
    model: str,
    video: str,
    frames: int,
    *,
    report_every: int = 1000,
    window: int = 1000,
    clip_frames: int | None = None,
    quiet: bool = False,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Run the soak and return the report (see module doc)."""
    if frames < 2:
        raise UserError("--frames must be at least 2")
    if report_every < 1 or window < 1:
        raise UserError("--report-every and --window must be at least 1")
    window = min(window, max(1, frames // 2))  # the two windows never overlap
    spec = inspect_model(model)
    runner, fused = runner_for_pipeline("ort-cpu", spec.path, spec)
    stamps: dict[int, float] = {}
    recorder = SoakRecorder(stamps, window, report_every, quiet)
    with runner:
        pipe = FramePipeline(spec, runner, fused=fused)
        rss_start = rss_kb()
        recorder.t0 = time.perf_counter()
        stats = run_live(
            looped_frames(video, frames, clip_frames, stamps),
            pipe,
            recorder,
            draw=True,
            drop_stale=False,
            cancel=cancel,
        )
        rss_end = rss_kb()
        info = runner.describe()
        timer_samples = sum(len(v) for v in pipe.timer.samples.values())
    rss_warm = recorder.rss[0][1] if recorder.rss else rss_start
    return {
        "device": device_info(),
        "model": str(spec.path),
        "video": str(video),
        "backend": info["backend"],
        "provider": info["provider"],
        "frames": stats.frames_out,
        "seconds": round(stats.seconds, 3),
        "fps": round(stats.fps, 2),
        "max_queue": stats.max_queue,
        "dropped": stats.dropped,
        "rss_kb": {
            "start": rss_start,
            "warm": rss_warm,
            "end": rss_end,
            "samples": [{"frame": f, "kb": kb} for f, kb in recorder.rss],
        },
        "rss_growth_mb": round((rss_end - rss_warm) / 1024, 2),
        "first": _window_stats(recorder.first_infer, recorder.first_total),
        "last": _window_stats(recorder.last_infer, recorder.last_total),
        "timer_samples": timer_samples,
        "stages": stats.stages,
    }


def print_report(report: dict[str, Any]) -> None:
    first, last = report["first"], report["last"]
    print(
        f"soak: {report['frames']} frames in {report['seconds']:.1f} s ({report['fps']:.1f} fps) "
        f"on {report['backend']} ({report['provider']}), max queue {report['max_queue']}"
    )
    rows = [
        (
            f"{name} {p} (ms)",
            first[f"{name}_ms"][p],
            last[f"{name}_ms"][p],
            round(last[f"{name}_ms"][p] - first[f"{name}_ms"][p], 3),
        )
        for name in ("infer", "total")
        for p in ("p50", "p99")
    ]
    print(table(["metric", f"first {first['frames']}", f"last {last['frames']}", "change"], rows))
    rss = report["rss_kb"]
    print(
        table(
            ["frame", "rss MB"],
            [("start", round(rss["start"] / 1024, 1))]
            + [(s["frame"], round(s["kb"] / 1024, 1)) for s in rss["samples"]]
            + [("end", round(rss["end"] / 1024, 1))],
        )
    )
    print(f"rss growth after warm-up: {report['rss_growth_mb']:+.2f} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help=".onnx file or checkpoint folder")
    ap.add_argument("--video", required=True, help="video file, looped")
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--json", dest="json_out", help="write the report as JSON")
    ap.add_argument("--report-every", type=int, default=1000, help="RSS sample every N frames")
    ap.add_argument("--window", type=int, default=1000, help="frames in the first/last windows")
    ap.add_argument(
        "--clip-frames", type=int, help="restart the video after N frames (default: at its end)"
    )
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    if not Path(args.video).is_file():
        print(f"soak: error: {args.video}: no such video file", file=sys.stderr)
        return 2
    try:
        report = soak(
            args.model,
            args.video,
            args.frames,
            report_every=args.report_every,
            window=args.window,
            clip_frames=args.clip_frames,
            quiet=args.quiet,
        )
    except UserError as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nsoak: interrupted", file=sys.stderr)
        return 130
    print_report(report)
    save_json(args.json_out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
