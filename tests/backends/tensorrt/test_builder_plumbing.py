"""Builder plumbing against the recording stand-ins (argument flow only, not TensorRT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from app.backends.tensorrt import (
    BuildSettings,
    EngineExpectation,
    check_engine,
    side_path,
)
from app.backends.tensorrt.builder import build_engine
from app.backends.tensorrt.engine_header import sha256_file
from app.core.errors import Cancelled, CancelToken, UserError
from tests.assets import YOLOX_ONNX as YOLOX
from tests.backends.tensorrt.markers import needs_yolox
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn, names


# ------------------------------------------------------------------------------------------
# builder plumbing
# ------------------------------------------------------------------------------------------
@pytest.fixture
def dynamic_yolox(tmp_path: Path) -> Path:
    """A copy of YOLOX-Nano with a dynamic batch dimension."""
    if not YOLOX.is_file():
        pytest.skip("YOLOX-Nano not in shared assets")
    model = onnx.load(str(YOLOX))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    path = tmp_path / "yolox_dyn.onnx"
    onnx.save(model, str(path))
    return path


@needs_yolox
def test_build_qdq_on_10_plumbing(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn("10.14.1.48"), RecordingCudartStandIn()
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"OLD")
    progress: list[tuple[float, str]] = []
    out = tmp_path / "engines" / "int8.engine"
    settings = BuildSettings(precision="int8", graph="qdq", workspace_bytes=2 << 30, opt_level=4,
                             timing_cache_path=str(timing))  # fmt: skip
    summary = build_engine(YOLOX, settings, out, progress=lambda f, m: progress.append((f, m)),
                           cancel=CancelToken(), trt=trt, cudart=cudart)  # fmt: skip
    assert names(trt._calls, "create_network") == [(1 << 1,)]  # STRONGLY_TYPED bit only
    assert names(trt._calls, "set_flag") == []
    assert names(trt._calls, "set_memory_pool_limit") == [("WORKSPACE", 2 << 30)]
    assert trt._config.builder_optimization_level == 4
    assert names(trt._calls, "create_timing_cache") == [(b"OLD",)]
    assert timing.read_bytes() == b"OLD+tactics"
    assert names(trt._calls, "add_optimization_profile") == []  # the model is static
    assert progress[-1] == (1.0, "engine written") and (0.5, "Building engine") in progress
    assert summary["record"]["gpu_name"] == "Stand-in GPU"
    record = check_engine(out, EngineExpectation(trt_version="10.14.1.48",
                                                 model_sha256=sha256_file(YOLOX),
                                                 settings=settings.identity()))  # fmt: skip
    assert record is not None and record.compute_capability == "9.0"


@needs_yolox
def test_build_fp16_weak_typing_on_10_and_refusal_on_11(tmp_path: Path) -> None:
    trt = RecordingTrtStandIn("10.3.0")
    cudart = RecordingCudartStandIn()
    build_engine(YOLOX, BuildSettings(precision="fp16"), tmp_path / "a.engine", trt=trt,
                 cudart=cudart)  # fmt: skip
    assert names(trt._calls, "create_network") == [(0,)]
    assert names(trt._calls, "set_flag") == [("FP16",)]
    trt11 = RecordingTrtStandIn("11.0.0.5")
    with pytest.raises(UserError, match="TensorRT 11 has no FP16 builder flag"):
        build_engine(YOLOX, BuildSettings(precision="fp16"), tmp_path / "b.engine", trt=trt11,
                     cudart=cudart)  # fmt: skip
    assert trt11._calls == []  # refused before touching TensorRT


def test_build_dynamic_profile_and_calibrator_on_10(tmp_path: Path, dynamic_yolox: Path) -> None:
    trt, cudart = RecordingTrtStandIn("10.3.0"), RecordingCudartStandIn()
    shapes = ((1, 3, 416, 416), (2, 3, 416, 416), (4, 3, 416, 416))
    settings = BuildSettings(precision="int8", int8_source="calibrator",
                             profiles={"images": shapes})  # fmt: skip
    batches = [{"images": np.full((2, 3, 416, 416), k, np.float32)} for k in range(3)]
    cache = tmp_path / "calib.cache"
    summary = build_engine(dynamic_yolox, settings, tmp_path / "c.engine", batches=batches,
                           calibration_cache=cache, trt=trt, cudart=cudart)  # fmt: skip
    assert ("profile.set_shape", ("images", *shapes)) in trt._calls
    assert names(trt._calls, "add_optimization_profile") == [()]
    assert names(trt._calls, "set_calibration_profile") == [()]
    assert names(trt._calls, "set_flag") == [("INT8",)]
    assert names(trt._calls, "calibrator.batch_size") == [(2,)]
    assert len(names(trt._calls, "calibrator.get_batch")) == 3
    assert summary["calibration_batches"] == 3 and cache.read_bytes().startswith(b"TRT-")
    assert cudart._memory == {}  # device buffers freed after the build


def test_build_dynamic_input_without_profile(tmp_path: Path, dynamic_yolox: Path) -> None:
    with pytest.raises(UserError, match=r"input 'images' has a dynamic shape \[-1, 3, 416, 416\]"):
        build_engine(dynamic_yolox, BuildSettings(), tmp_path / "d.engine",
                     trt=RecordingTrtStandIn(), cudart=RecordingCudartStandIn())  # fmt: skip
    bad = BuildSettings(profiles={"image": ((1, 3, 416, 416),) * 3})
    with pytest.raises(UserError, match="unknown input"):
        build_engine(dynamic_yolox, bad, tmp_path / "d.engine", trt=RecordingTrtStandIn(),
                     cudart=RecordingCudartStandIn())  # fmt: skip


def test_build_parse_errors_collected(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(UserError, match=r"cannot parse broken\.onnx: ModelImporter.*; node 0: bad"):
        build_engine(broken, BuildSettings(), tmp_path / "e.engine", trt=RecordingTrtStandIn(),
                     cudart=RecordingCudartStandIn())  # fmt: skip
    with pytest.raises(UserError, match="ONNX model not found"):
        build_engine(tmp_path / "missing.onnx", BuildSettings(), tmp_path / "e.engine")


@needs_yolox
def test_build_failure_and_cancel(tmp_path: Path) -> None:
    out = tmp_path / "f.engine"
    with pytest.raises(UserError, match="could not build the engine: Error Code 4"):
        build_engine(YOLOX, BuildSettings(), out, trt=RecordingTrtStandIn(fail_build=True),
                     cudart=RecordingCudartStandIn())  # fmt: skip
    token = CancelToken()

    def cancel_half_way(fraction: float, message: str) -> None:
        if fraction >= 0.5:
            token.cancel()

    with pytest.raises(Cancelled):
        build_engine(YOLOX, BuildSettings(), out, progress=cancel_half_way, cancel=token,
                     trt=RecordingTrtStandIn(), cudart=RecordingCudartStandIn())  # fmt: skip
    assert not out.exists() and not side_path(out).exists()


@needs_yolox
def test_calibrator_without_batches_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs calibration images"):
        build_engine(YOLOX, BuildSettings(precision="int8", int8_source="calibrator"),
                     tmp_path / "g.engine", trt=RecordingTrtStandIn(),
                     cudart=RecordingCudartStandIn())  # fmt: skip
