"""The live pipeline: one FramePipeline overlapped on three threads (`stages.run_stages`).

decode + preprocess (OpenCV and numpy, release the GIL) -> infer (ONNX Runtime, releases the
GIL) -> postprocess + draw -> sink. With `drop_stale=True` (cameras) the decoder replaces a frame
nobody has taken yet instead of waiting, so a slow model shows the newest frame rather than
building a backlog; with `drop_stale=False` (files, benchmarks) every frame is processed and the
decoder waits. The GUI's views cut the same pipeline into the same stages (`PipelineStages`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from app.core.errors import CancelToken
from app.core.frames.pipeline import FramePipeline, FrameResult, Prepared
from app.core.frames.sources import Frame
from app.core.frames.stages import LiveStats, run_stages

__all__ = ["LiveStats", "PipelineStages", "measure_sequential", "run_live", "slowest_stage_rate"]


class PipelineStages:
    """One FramePipeline cut into the stages `run_stages` overlaps: `prepare` (reader thread:
    preprocess into a tensor of the frame's own, since the next frames are prepared while it
    waits), `infer` (the runtime only) and `finish` (postprocess; the frame's stage times go to
    the pipeline's timer, one timer per pipeline so reports and charts read the same numbers)."""

    def __init__(self, pipe: FramePipeline) -> None:
        self.pipe = pipe

    def prepare(self, frame: Frame) -> tuple[Frame, Prepared]:
        return frame, self.pipe.prepare(frame.image, own=True)

    def infer(self, item: tuple[Frame, Prepared]) -> tuple[Frame, Any, Any, dict[str, float]]:
        frame, prep = item
        outputs, geo, times = self.pipe.infer_prepared(prep)
        return frame, outputs, geo, times

    def finish(self, state: tuple[Frame, Any, Any, dict[str, float]]) -> tuple[Frame, FrameResult]:
        frame, outputs, geo, times = state
        return frame, self.pipe.finish(outputs, geo, times)


def run_live(
    frames: Iterable[Frame],
    pipe: FramePipeline,
    sink: Callable[[Frame, FrameResult, np.ndarray], None] | None = None,
    *,
    draw: bool = True,
    drop_stale: bool = False,
    depth: int = 2,
    cancel: CancelToken | None = None,
) -> LiveStats:
    """Run frames through `pipe` on three threads; `sink(frame, result, annotated)` gets each,
    on the finisher thread, in order. (Preprocessing on a fourth thread of its own was measured
    on an H100 and was not faster.)"""
    stages = PipelineStages(pipe)

    def finish(state: tuple[Frame, Any, Any, dict[str, float]]) -> None:
        frame, result = stages.finish(state)
        if draw:
            pipe.draw(frame.image, result)  # in place: the frame is ours; records draw_ms
        if sink:
            sink(frame, result, frame.image)

    stats = run_stages(
        frames,
        stages.infer,
        finish,
        prepare=stages.prepare,
        drop_stale=drop_stale,
        depth=depth,
        cancel=cancel,
        timer=pipe.timer,
    )
    summary = pipe.timer.summary()
    stats.stages = {k: {p: v[p] for p in ("p50", "p90", "p99")} for k, v in summary.items()}
    return stats


def measure_sequential(frames: Iterable[Frame], pipe: FramePipeline, draw: bool = True) -> dict:
    """Each stage's own cost with nothing overlapping (one thread): the yardstick for run_live."""
    from app.core.timing import StageTimer

    timer = StageTimer()
    it = iter(frames)
    while True:
        t0 = time.perf_counter()
        frame = next(it, None)
        if frame is None:
            break
        timer.add("decode_ms", (time.perf_counter() - t0) * 1e3)
        outputs, geo, times = pipe.infer_raw(frame.image)
        timer.add("preprocess_ms", times["preprocess_ms"])
        timer.add("infer_ms", times["infer_ms"])
        with timer.stage("postprocess_ms"):
            result = pipe.decode(outputs, geo)
        if draw:
            with timer.stage("draw_ms"):
                pipe.draw(frame.image, result)
    return {k: {p: v[p] for p in ("p50", "p90", "p99")} for k, v in timer.summary().items()}


def slowest_stage_rate(stages: dict[str, dict[str, float]]) -> tuple[str, float]:
    """(name, frames/s) of the slowest thread: decode+preprocess, infer, or postprocess+draw."""
    groups = {
        "decode+preprocess": ["decode_ms", "preprocess_ms"],
        "infer": ["infer_ms"],
        "postprocess+draw": ["postprocess_ms", "draw_ms"],
    }
    costs = {g: sum(stages.get(k, {}).get("p50", 0.0) for k in keys) for g, keys in groups.items()}
    name = max(costs, key=costs.get)
    return name, 1000.0 / costs[name] if costs[name] > 0 else 0.0
