"""Latency statistics: percentiles over recorded stage times."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

# A latency ratio within this of 1.0 is "about the same": on a loaded machine medians move by a
# few %.
SAME_SPEED_BAND = 0.05
# Graphs timed in turns start each turn with SETTLE_S of runs not counted. An idle ONNX Runtime
# thread pool spins on its cores for tens of ms after each run, and in run-by-run turns one
# session's spinning workers were measured, not the next session's speed. EfficientNet-Lite0 at
# 2 threads on a 2-core Zen 5 VM, runs 1..30 after a switch (median of 30 s of turns): FP32 4.2,
# 6.5, 6.4, 6.5, 4.4, 3.3, 2.6 ... settling at 2.36 ms from the 10th run (about 40 ms); INT8 2.5,
# 2.2 ... settling at 1.08 ms from the 10th. Run by run the INT8/FP32 ratio read 0.28-0.36
# instead of 0.46.
SETTLE_S = 0.1


def in_turns(
    timed: Sequence[Callable[[], Any]],
    untimed: Sequence[Callable[[], Any]],
    block_of_round: Callable[[int], int],
    settle_s: float = 0.0,
) -> None:
    """Run several graphs in turns, the one loop `bench` and `quantize`'s speed check share: in
    round r each graph first runs `untimed[i]` for `settle_s` (the previous graph's idle threads
    spin down, see SETTLE_S), then `timed[i]` (which times and records one run)
    block_of_round(r) times; rounds go on while block_of_round(r) > 0."""
    r = 0
    while (block := block_of_round(r)) > 0:
        for run_timed, run in zip(timed, untimed, strict=True):
            turn = time.perf_counter()
            while settle_s and time.perf_counter() - turn < settle_s:
                run()
            for _ in range(block):
                run_timed()
        r += 1


def percentiles(samples_ms: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/mean of a list of milliseconds; zeros for an empty list."""
    arr = np.asarray(
        samples_ms if isinstance(samples_ms, np.ndarray) else list(samples_ms), dtype=np.float64
    )
    if arr.size == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0, "n": 0}
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {
        "p50": round(float(p50), 4),
        "p90": round(float(p90), 4),
        "p99": round(float(p99), 4),
        "mean": round(float(arr.mean()), 4),
        "n": int(arr.size),
    }


class SampleRing:
    """The most recent `capacity` samples in one preallocated float64 array: memory is fixed
    from the first sample on, however long a camera runs."""

    def __init__(self, capacity: int) -> None:
        self._data = np.empty(capacity, dtype=np.float64)
        self._count = 0

    def append(self, value: float) -> None:
        self._data[self._count % self._data.size] = value
        self._count += 1

    def values(self) -> np.ndarray:
        if self._count <= self._data.size:
            return self._data[: self._count]
        start = self._count % self._data.size
        return np.concatenate([self._data[start:], self._data[:start]])

    def __len__(self) -> int:
        return min(self._count, self._data.size)

    def __iter__(self) -> Iterator[float]:
        return iter(self.values().tolist())

    def clear(self) -> None:
        self._count = 0


class StageTimer:
    """Collects per-stage durations in milliseconds (`with timer.stage("infer"): ...`), keeping
    the most recent `window` of each stage in fixed memory."""

    def __init__(self, window: int = 20_000) -> None:
        self.samples: dict[str, SampleRing] = defaultdict(lambda: SampleRing(window))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.samples[name].append((time.perf_counter() - t0) * 1000.0)

    def add(self, name: str, ms: float) -> None:
        self.samples[name].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: percentiles(ring.values()) for name, ring in self.samples.items()}


def speed_verdict(
    ratio: float,
    variant: str = "int8",
    baseline: str = "fp32",
    backend: str = "ort-cpu",
    instead: str = "",
    *,
    exact: bool = False,
) -> str:
    """One sentence on `variant`'s latency against `baseline`'s (ratio = variant / baseline);
    `instead`: the variant recommended in its place, when that is not `baseline`; `exact`: the
    variant computes what `baseline` does (`fp32-prep`), so only speed can speak for it."""
    if ratio < 1.0 - SAME_SPEED_BAND:
        return f"{variant} runs at {ratio:.2f}x {baseline}'s latency on {backend} here"
    other = f"{instead}, recommended above" if instead and instead != baseline else ""
    if ratio <= 1.0 + SAME_SPEED_BAND:
        advice = (
            f"use {other}"
            if other
            else f"its rewrite gains nothing measurable here; use {baseline}"
            if exact
            else f"{baseline} is as fast and more accurate; prefer it unless the smaller file "
            "matters"
        )
        return (
            f"{variant} is not faster than {baseline} on {backend} here ({ratio:.2f}x the "
            f"latency): {advice}"
        )
    use = other or baseline
    return (
        f"{variant} is SLOWER than {baseline} on {backend} here ({ratio:.2f}x the latency): "
        f"use {use}"
    )
