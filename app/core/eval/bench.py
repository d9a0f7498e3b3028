"""Latency benchmarking the way trtexec reports it: warm-up not counted, percentiles over many
runs, copies separated from compute where the backend allows, and the machine recorded."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from app.core.timing import SETTLE_S, in_turns, percentiles


def device_info() -> dict[str, Any]:
    """CPU, GPU (nvidia-smi when present) and library versions, stored with every figure."""
    import cv2
    import onnxruntime as ort

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
    }
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            info["gpu"] = out.splitlines()[0] if out else ""
        except (OSError, subprocess.SubprocessError):
            info["gpu"] = ""
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except Exception:  # absent or the PyPI stub: nothing to record
        pass
    try:
        from app.core.openvino_session import import_openvino

        info["openvino"] = import_openvino().get_version()
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


TURNS = 10  # rounds `time_in_turns` splits the iterations into


def time_runner(runner: Any, feed: np.ndarray, iterations: int = 200, warmup: int = 20) -> dict:
    """p50/p90/p99/mean of `runner.infer(feed)` (numpy in and out), plus copy/compute splits and
    device-resident compute when the runner offers them."""
    return time_in_turns([(runner, feed)], iterations, warmup)[0]


def time_in_turns(
    pairs: list[tuple[Any, np.ndarray]], iterations: int = 200, warmup: int = 20, turns: int = TURNS
) -> list[dict]:
    """`time_runner` of several (runner, feed) pairs timed in turns: each runs a tenth of its
    iterations, then the next, so load from other programs that comes and goes falls on all of
    them alike and their ratios hold on a busy machine (one after another, the same INT8 read
    1.28x FP32 on a 2-core VM where an interleaved check read 1.00x; see also
    `app.core.timing.SETTLE_S`)."""
    for runner, feed in pairs:
        for _ in range(warmup):
            runner.infer(feed)
    samples: list[dict[str, list[float]]] = [
        {"total": [], "h2d": [], "compute": [], "d2h": []} for _ in pairs
    ]

    def timed(runner: Any, feed: np.ndarray, got: dict[str, list[float]]) -> Callable[[], None]:
        def run() -> None:
            t0 = time.perf_counter()
            runner.infer(feed)
            got["total"].append((time.perf_counter() - t0) * 1e3)
            split = getattr(runner, "last_timings", None) or {}
            if split:
                got["h2d"].append(split["h2d_ms"])
                got["compute"].append(split["compute_ms"])
                got["d2h"].append(split["d2h_ms"])

        return run

    chunk = max(1, iterations // max(1, turns))
    in_turns(
        [timed(runner, feed, got) for (runner, feed), got in zip(pairs, samples, strict=True)],
        [partial(runner.infer, feed) for runner, feed in pairs],
        lambda r: max(0, min(chunk, iterations - r * chunk)),
        # a turn first runs uncounted: the previous session's idle threads still spin
        SETTLE_S if len(pairs) > 1 else 0.0,
    )
    return [_summary(runner, got, iterations) for (runner, _), got in zip(pairs, samples)]


def _summary(runner: Any, got: dict[str, list[float]], iterations: int) -> dict:
    result: dict[str, Any] = {"latency_ms": percentiles(got["total"])}
    result["throughput_fps"] = (
        round(1000.0 / result["latency_ms"]["mean"], 2) if got["total"] else 0.0
    )
    if got["h2d"]:
        result["h2d_ms"] = percentiles(got["h2d"])
        result["compute_ms"] = percentiles(got["compute"])
        result["d2h_ms"] = percentiles(got["d2h"])
    resident = getattr(runner, "run_resident", None)
    if resident is not None and got["h2d"]:
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            resident()
            times.append((time.perf_counter() - t0) * 1e3)
        result["resident_ms"] = percentiles(times)
    return result
