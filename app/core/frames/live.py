"""The live pipeline: decode, infer and draw on three threads so the stages overlap.

decode + preprocess (OpenCV and numpy, release the GIL) -> infer (ONNX Runtime, releases the
GIL) -> postprocess + draw -> sink. Preprocessing sits with decoding so the inference thread
does nothing but feed the runtime. Queues hold at most `depth` frames. With `drop_stale=True`
(cameras, the GUI) the decoder replaces a frame nobody has taken yet instead of waiting, so a
slow model shows the newest frame rather than building a backlog; with `drop_stale=False`
(files, benchmarks) every frame is processed and the decoder waits.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.errors import CancelToken
from app.core.frames.pipeline import FramePipeline, FrameResult
from app.core.frames.sources import Frame

_END = object()


@dataclass
class LiveStats:
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    seconds: float = 0.0
    max_queue: int = 0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str = ""

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "max_queue": self.max_queue,
            "stages": self.stages,
            "error": self.error,
        }


class _LatestSlot:
    """A one-frame mailbox: `put` replaces an untaken frame (counted as dropped); the end marker
    waits behind the last frame instead of replacing it."""

    def __init__(self) -> None:
        self._item: Any = None
        self._has = False
        self._ended = False
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if item is _END:
                self._ended = True
            else:
                if self._has:
                    self.dropped += 1
                self._item, self._has = item, True
            self._cond.notify()

    def get(self, timeout: float = 0.5) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: self._has or self._ended, timeout):
                raise queue.Empty
            if not self._has:
                return _END
            item, self._item, self._has = self._item, None, False
            return item

    def qsize(self) -> int:
        return int(self._has)


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
    """Run frames through `pipe` on three threads; `sink(frame, result, annotated)` gets each.
    (Preprocessing on a fourth thread of its own was measured on an H100 and was not faster.)"""
    cancel = cancel or CancelToken()
    timer = pipe.timer  # one timer per pipeline: reports and charts read the same numbers
    stats = LiveStats()
    q_in: Any = _LatestSlot() if drop_stale else queue.Queue(maxsize=depth)
    q_out: queue.Queue = queue.Queue(maxsize=depth)
    errors: list[BaseException] = []

    def put(q: Any, item: Any) -> bool:
        while not cancel.cancelled and not errors:
            try:
                if isinstance(q, _LatestSlot):
                    q.put(item)
                else:
                    q.put(item, timeout=0.2)
                stats.max_queue = max(stats.max_queue, q.qsize())
                return True
            except queue.Full:
                continue
        return False

    def get(q: Any) -> Any:
        while not cancel.cancelled and not errors:
            try:
                return q.get(timeout=0.2)
            except queue.Empty:
                continue
        return _END

    def decode() -> None:
        try:
            it = iter(frames)
            while not cancel.cancelled and not errors:
                t0 = time.perf_counter()
                frame = next(it, None)
                if frame is None:
                    break
                timer.add("decode_ms", (time.perf_counter() - t0) * 1e3)
                stats.frames_in += 1
                prep = pipe.prepare(frame.image, own=True)  # a tensor of its own: frames queue
                timer.add("preprocess_ms", prep.preprocess_ms)
                if not put(q_in, (frame, prep)):
                    return
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)
        finally:
            put(q_in, _END)

    def infer() -> None:
        try:
            while (item := get(q_in)) is not _END:
                frame, prep = item
                outputs, geo, times = pipe.infer_prepared(prep)
                timer.add("infer_ms", times["infer_ms"])
                if not put(q_out, (frame, outputs, geo, times)):
                    return
        except BaseException as exc:
            errors.append(exc)
        finally:
            put(q_out, _END)

    # Stages hand the GIL back and forth around short C calls; CPython's default 5 ms switch
    # interval makes a thread that wants it wait that long, serialising the stages.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(old_interval, 0.0005))
    threads = [
        threading.Thread(target=decode, name="live-decode", daemon=True),
        threading.Thread(target=infer, name="live-infer", daemon=True),
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    try:
        while (item := get(q_out)) is not _END:
            frame, outputs, geo, times = item
            t0 = time.perf_counter()
            result = pipe.decode(outputs, geo)
            t1 = time.perf_counter()
            times["postprocess_ms"] = (t1 - t0) * 1e3
            timer.add("postprocess_ms", times["postprocess_ms"])
            image = frame.image
            if draw:
                pipe.draw(image, result)  # records draw_ms itself
            result.timings_ms = times
            if sink:
                sink(frame, result, image)
            stats.frames_out += 1
    finally:
        cancel.cancel() if errors else None
        for t in threads:
            t.join(timeout=5)
        sys.setswitchinterval(old_interval)
    stats.seconds = time.perf_counter() - start
    stats.dropped = q_in.dropped if isinstance(q_in, _LatestSlot) else 0
    stats.stages = {k: {p: v[p] for p in ("p50", "p90", "p99")} for k, v in timer.summary().items()}
    if errors:
        raise errors[0]
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
