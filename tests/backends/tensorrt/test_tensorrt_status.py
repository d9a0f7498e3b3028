"""TensorRT status and lazy imports: what a machine without TensorRT says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.backends.tensorrt import (
    tensorrt_status,
)
from app.backends.tensorrt.deps import TRT_INSTALL_HINT
from app.backends.tensorrt.runtime import TensorRTRunner
from app.core.errors import UserError
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn


# ------------------------------------------------------------------------------------------
# status and lazy imports
# ------------------------------------------------------------------------------------------
def test_package_imports_without_tensorrt_or_cuda() -> None:
    code = (
        "import sys, app.backends.tensorrt, app.backends.tensorrt.builder, "
        "app.backends.tensorrt.runtime, app.backends.tensorrt.calibrator, "
        "app.backends.ort_trt_options; "
        "print('tensorrt' in sys.modules, 'cuda' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.skipif(tensorrt_status().available, reason="TensorRT is available here")
def test_status_on_this_machine_says_unavailable() -> None:
    status = tensorrt_status()
    assert status.name == "tensorrt" and status.available is False
    assert status.reason  # one line a user can act on
    assert "\n" not in status.reason
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert status.reason == TRT_INSTALL_HINT


def _raise(exc: BaseException) -> Any:
    def load() -> Any:
        raise exc

    return load


def test_status_branches_with_stand_ins() -> None:
    cudart = RecordingCudartStandIn()
    trt11 = RecordingTrtStandIn("11.0.0.5")
    s = tensorrt_status(load_tensorrt=_raise(OSError("libnvinfer.so.10: cannot open")))
    assert not s.available and "libnvinfer.so.10" in s.reason

    stub = SimpleNamespace(__version__="10.0.0")  # the PyPI placeholder: no Builder
    s = tensorrt_status(load_tensorrt=lambda: stub, load_cudart=lambda: cudart)
    assert not s.available and "stub" in s.reason

    s = tensorrt_status(load_tensorrt=lambda: RecordingTrtStandIn("8.6.1"))
    assert not s.available and "too old" in s.reason

    s = tensorrt_status(load_tensorrt=lambda: trt11, load_cudart=_raise(ImportError("cuda")))
    assert not s.available and "cuda-python" in s.reason and s.details["trt_major"] == 11

    s = tensorrt_status(load_tensorrt=lambda: trt11, load_cudart=lambda: RecordingCudartStandIn(0))
    assert not s.available and s.reason.startswith("no CUDA device")

    s = tensorrt_status(load_tensorrt=lambda: trt11, load_cudart=lambda: cudart)
    assert s.available and s.details == {
        "trt_version": "11.0.0.5", "trt_major": 11, "calibrator_int8": False,
        "cuda_devices": 1, "gpu": "Stand-in GPU", "compute_capability": "9.0",
    }  # fmt: skip


def test_runner_without_tensorrt_says_how_to_install(tmp_path: Path) -> None:
    if tensorrt_status().available:
        pytest.skip("TensorRT is available here")
    with pytest.raises(UserError, match="TensorRT"):
        TensorRTRunner(tmp_path / "m.engine").open()
