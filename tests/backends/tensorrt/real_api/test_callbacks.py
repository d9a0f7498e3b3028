"""The app's ILogger, IProgressMonitor and calibrators: real subclasses, called back by TensorRT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.backends.tensorrt.builder import make_logger, make_progress_monitor
from app.backends.tensorrt.calibrator import make_calibrator
from app.core.errors import CancelToken
from tests.backends.tensorrt.real_api.checked import CheckedCudart, CheckedTrt


def test_logger_through_the_trampoline(trt: Any) -> None:
    logger = make_logger(trt)
    assert isinstance(logger, trt.ILogger)
    for severity in trt.ILogger.Severity.__members__.values():
        trt.ILogger.log(logger, severity, f"at {severity.name}")  # C++ -> trampoline -> app
    assert logger.errors == ["at INTERNAL_ERROR", "at ERROR"]
    with pytest.raises(TypeError, match="nullptr"):  # the real constructor took our logger
        trt.Runtime(logger)


def test_progress_monitor_through_the_trampoline(trt: Any) -> None:
    token, seen = CancelToken(), []
    monitor = make_progress_monitor(trt, lambda f, m: seen.append((round(f, 2), m)), token)
    assert isinstance(monitor, trt.IProgressMonitor)
    trt.IProgressMonitor.phase_start(monitor, "Building", None, 4)
    trt.IProgressMonitor.phase_start(monitor, "Tactics", "Building", 2)
    assert trt.IProgressMonitor.step_complete(monitor, "Tactics", 0) is True
    trt.IProgressMonitor.phase_finish(monitor, "Tactics")
    assert trt.IProgressMonitor.step_complete(monitor, "Building", 1) is True
    assert seen[-1] == (0.5, "Building")
    token.cancel()
    assert trt.IProgressMonitor.step_complete(monitor, "Building", 2) is False
    trt.IProgressMonitor.phase_finish(monitor, "Building")
    assert seen[-1] == (1.0, "Building") and monitor.error is None


@pytest.mark.parametrize("algo", ["entropy2", "minmax"])
def test_calibrator_as_tensorrt_calls_it(
    trt: Any, cudart: Any, major: int, algo: str, tmp_path: Path
) -> None:
    if major >= 11:
        assert not hasattr(trt, "IInt8EntropyCalibrator2")  # removed: plan_build refuses it
        return
    problems: list[str] = []
    checked_trt, checked_rt = CheckedTrt(trt, problems), CheckedCudart(cudart, problems)
    batches = [{"images": np.full((2, 3, 4, 4), k, np.float32)} for k in range(3)]
    cal = make_calibrator(trt, batches, tmp_path / "c.cache", algo, cudart=checked_rt)
    base = type(cal).__mro__[1].__name__
    call = checked_trt._dispatch
    assert call(cal, base, "get_batch_size") == 2  # through the trampoline
    assert call(cal, base, "read_calibration_cache") is None
    served = []
    while (ptrs := call(cal, base, "get_batch", ["images"])) is not None:
        served.append(checked_rt.stand_in._read(ptrs[0], (2, 3, 4, 4))[0, 0, 0, 0])
    call(cal, base, "write_calibration_cache", memoryview(b"TRT-table"))
    assert bytes(call(cal, base, "read_calibration_cache")) == b"TRT-table"
    assert served == [0, 1, 2] and cal.error is None and problems == []
    assert checked_rt.stand_in._memory == {}  # freed after the last batch
