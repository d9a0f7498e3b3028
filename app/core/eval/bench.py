"""Latency benchmarking the way trtexec reports it: warm-up not counted, percentiles over many
runs, copies separated from compute where the backend allows, and the machine recorded."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from typing import Any

import numpy as np

from app.core.timing import percentiles


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
        import openvino

        info["openvino"] = openvino.get_version()
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


def time_runner(runner: Any, feed: np.ndarray, iterations: int = 200, warmup: int = 20) -> dict:
    """p50/p90/p99/mean of `runner.infer(feed)` (numpy in and out), plus copy/compute splits and
    device-resident compute when the runner offers them."""
    for _ in range(warmup):
        runner.infer(feed)
    total, h2d, compute, d2h = [], [], [], []
    for _ in range(iterations):
        t0 = time.perf_counter()
        runner.infer(feed)
        total.append((time.perf_counter() - t0) * 1e3)
        split = getattr(runner, "last_timings", None) or {}
        if split:
            h2d.append(split["h2d_ms"])
            compute.append(split["compute_ms"])
            d2h.append(split["d2h_ms"])
    result: dict[str, Any] = {"latency_ms": percentiles(total)}
    result["throughput_fps"] = round(1000.0 / result["latency_ms"]["mean"], 2) if total else 0.0
    if h2d:
        result["h2d_ms"] = percentiles(h2d)
        result["compute_ms"] = percentiles(compute)
        result["d2h_ms"] = percentiles(d2h)
    resident = getattr(runner, "run_resident", None)
    if resident is not None and h2d:
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            resident()
            times.append((time.perf_counter() - t0) * 1e3)
        result["resident_ms"] = percentiles(times)
    return result
