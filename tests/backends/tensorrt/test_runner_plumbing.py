"""Runner plumbing against the recording stand-ins, and the real build+run where TensorRT exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.backends.tensorrt import (
    BuildSettings,
)
from app.backends.tensorrt.builder import build_engine
from app.backends.tensorrt.engine_header import sha256_file, side_path, write_engine
from app.backends.tensorrt.runtime import TensorRTRunner
from app.core.errors import UserError
from tests.assets import YOLOX_ONNX as YOLOX
from tests.backends.tensorrt.markers import needs_trt_gpu, needs_yolox
from tests.backends.tensorrt.record_helpers import _record
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn, names


# ------------------------------------------------------------------------------------------
# runner plumbing
# ------------------------------------------------------------------------------------------
def _stand_in_engine(tmp_path: Path, trt_version: str = "10.3.0") -> Path:
    path = tmp_path / "standin.engine"
    write_engine(path, b"STAND-IN PLAN", _record(trt_version=trt_version, gpu_name="Stand-in GPU"))
    return path


def test_runner_copies_in_runs_copies_out_and_frees(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn("10.3.0"), RecordingCudartStandIn()
    runner = TensorRTRunner(_stand_in_engine(tmp_path), model_sha256="a" * 64, trt=trt,
                            cudart=cudart)  # fmt: skip
    with runner:
        assert [i.name for i in runner.inputs] == ["images"]
        assert runner.inputs[0].shape == ["dim0", 3] and runner.outputs[0].dtype == "float32"
        assert runner.describe()["provider"] == "TensorRT 10.3.0 on Stand-in GPU"
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        (y,) = runner.infer(x)
        np.testing.assert_array_equal(y, x * 2)
        assert runner.last_timings == {"h2d_ms": 0.25, "compute_ms": 0.25, "d2h_ms": 0.25}
        (y4,) = runner.infer(np.ones((4, 3), np.float64))  # larger batch: buffers grow
        np.testing.assert_array_equal(y4, np.full((4, 3), 2.0, np.float32))
        assert ("set_input_shape", ("images", (4, 3))) in trt._calls
        assert names(trt._calls, "execute_async_v3") == [(7001,), (7001,)]
        with pytest.raises(
            UserError, match=r"outside the engine's profile \(\[1, 3\] \.\. \[8, 3\]"
        ):
            runner.infer(np.ones((9, 3), np.float32))
    assert cudart._memory == {}  # device and pinned buffers freed
    assert len(names(cudart._calls, "cudaEventDestroy")) == 4
    assert names(cudart._calls, "cudaStreamDestroy") == [(7001,)]


def test_runner_refuses_engine_from_other_trt(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn("10.4.0"), RecordingCudartStandIn()
    with pytest.raises(UserError, match="stale TensorRT version"):
        TensorRTRunner(_stand_in_engine(tmp_path, "10.3.0"), trt=trt, cudart=cudart).open()
    assert names(trt._calls, "deserialize_cuda_engine") == []  # checked before TensorRT sees it


def test_host_code_allowed_only_for_recorded_version_compatible_engines(tmp_path: Path) -> None:
    """Version-compatible plans embed the lean runtime; trt.Runtime refuses them unless allowed."""
    for compatible, unrecorded in ((True, False), (False, False), (False, True)):
        trt, cudart = RecordingTrtStandIn("10.3.0"), RecordingCudartStandIn()
        path = tmp_path / f"vc{compatible}{unrecorded}.engine"
        settings = BuildSettings(version_compatible=compatible).identity()
        write_engine(path, b"STAND-IN PLAN", _record(trt_version="10.3.0", gpu_name="Stand-in GPU",
                                                     settings=settings))  # fmt: skip
        if unrecorded:
            side_path(path).unlink()
        with TensorRTRunner(path, allow_unrecorded=unrecorded, trt=trt, cudart=cudart):
            pass
        assert names(trt._calls, "deserialize_cuda_engine") == [(13, compatible)]


# ------------------------------------------------------------------------------------------
# real TensorRT (skipped here)
# ------------------------------------------------------------------------------------------
@needs_trt_gpu
@needs_yolox
def test_real_build_and_run_yolox(tmp_path: Path) -> None:
    out = tmp_path / "yolox_fp32.engine"
    build_engine(YOLOX, BuildSettings(timing_cache_path=str(tmp_path / "t.cache")), out)
    x = np.random.default_rng(0).random((1, 3, 416, 416), np.float32)
    with TensorRTRunner(out, model_sha256=sha256_file(YOLOX)) as runner:
        (y,) = runner.infer(x)
        assert y.shape == (1, 3549, 85) and np.isfinite(y).all()
        assert set(runner.last_timings) == {"h2d_ms", "compute_ms", "d2h_ms"}
        assert runner.describe()["provider"].startswith("TensorRT")
