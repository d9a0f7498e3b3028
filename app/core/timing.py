"""Latency statistics: percentiles over recorded stage times."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np


def percentiles(samples_ms: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/mean of a list of milliseconds; zeros for an empty list."""
    arr = np.asarray(list(samples_ms), dtype=np.float64)
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


class StageTimer:
    """Collects per-stage durations in milliseconds (`with timer.stage("infer"): ...`), keeping
    the most recent `window` of each stage so a camera left running for days stays bounded."""

    def __init__(self, window: int = 20_000) -> None:
        self.samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))

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
        return {name: percentiles(values) for name, values in self.samples.items()}
