"""build_engine and TensorRTRunner against the real API, every call checked (see checked.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from app.backends.registry import _has_library, ort_tensorrt_library_reason
from app.backends.tensorrt.builder import build_engine
from app.backends.tensorrt.engine_header import EngineRecord, write_engine
from app.backends.tensorrt.runtime import TensorRTRunner
from app.backends.tensorrt.settings import BuildSettings
from app.core.errors import Cancelled, CancelToken, UserError
from tests.backends.tensorrt.real_api.checked import CheckedCudart, CheckedTrt
from tests.backends.tensorrt.standins import names

PROFILE = {"images": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}
BOTH = [
    ("fp32", {}),
    ("fp16 graph, dynamic profile", {"precision": "fp16", "graph": "fp16", "profiles": PROFILE}),
    ("int8 Q/DQ, version-compatible", {"precision": "int8", "graph": "qdq",
                                       "version_compatible": True}),
]  # fmt: skip
ONLY_10 = [
    ("fp16 flag", {"precision": "fp16"}),
    ("int8 calibrator, dynamic", {"precision": "int8", "int8_source": "calibrator",
                                  "profiles": PROFILE}),
    ("int8 minmax + fp16", {"precision": "int8", "int8_source": "calibrator",
                            "calibrator": "minmax", "int8_fp16_fallback": True}),
]  # fmt: skip


def _model(tmp_path: Path, batch: int | str) -> Path:
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 8, 8])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["images"], ["scores"])], "g", [x], [y])
    path = tmp_path / f"m{batch}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(("label", "kw"), BOTH + ONLY_10, ids=[b[0] for b in BOTH + ONLY_10])
def test_build_engine_against_real_api(
    trt: Any, cudart: Any, major: int, label: str, kw: dict, tmp_path: Path
) -> None:
    if major >= 11 and (label, kw) in ONLY_10:
        pytest.skip("TensorRT 11 has no FP16/INT8 builder flags or calibrators (plan refuses)")
    problems: list[str] = []
    ctrt, crt = CheckedTrt(trt, problems), CheckedCudart(cudart, problems)
    model = _model(tmp_path, "N" if "profiles" in kw else 2)
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"OLD")
    settings = BuildSettings(timing_cache_path=str(timing), **kw)
    batches = [{"images": np.ones((2, 3, 8, 8), np.float32)}] * 2
    seen: list[str] = []
    summary = build_engine(model, settings, tmp_path / "e.engine", batches=batches,
                           calibration_cache=tmp_path / "c.cache", cancel=CancelToken(),
                           progress=lambda f, m: seen.append(m), trt=ctrt, cudart=crt)  # fmt: skip
    assert problems == []
    assert summary["record"]["trt_version"] == trt.__version__ and "Building engine" in seen
    if "calibrator" in kw.get("int8_source", ""):
        assert summary["calibration_batches"] == 2


def test_build_failure_and_cancel_against_real_api(trt: Any, cudart: Any, tmp_path: Path) -> None:
    problems: list[str] = []
    model, out = _model(tmp_path, 1), tmp_path / "f.engine"
    with pytest.raises(UserError, match="Error Code 4"):
        build_engine(model, BuildSettings(), out, trt=CheckedTrt(trt, problems, fail_build=True),
                     cudart=CheckedCudart(cudart, problems))  # fmt: skip
    token = CancelToken()
    with pytest.raises(Cancelled):
        build_engine(
            model,
            BuildSettings(),
            out,
            cancel=token,
            progress=lambda f, m: token.cancel() if f >= 0.5 else None,
            trt=CheckedTrt(trt, problems),
            cudart=CheckedCudart(cudart, problems),
        )
    assert problems == [] and not out.exists()


@pytest.mark.parametrize("version_compatible", [False, True])
def test_runner_against_real_api(
    trt: Any, cudart: Any, version_compatible: bool, tmp_path: Path
) -> None:
    problems: list[str] = []
    ctrt, crt = CheckedTrt(trt, problems), CheckedCudart(cudart, problems)
    path = tmp_path / "standin.engine"
    settings = BuildSettings(version_compatible=version_compatible).identity()
    write_engine(path, b"STAND-IN PLAN", EngineRecord(trt.__version__, "Stand-in GPU", "9.0",
                                                      "a" * 64, settings))  # fmt: skip
    with TensorRTRunner(path, trt=ctrt, cudart=crt) as runner:
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        np.testing.assert_array_equal(runner.infer(x)[0], x * 2)
    assert problems == []
    # engine_host_code_allowed was set (through the real setter) exactly for version-compatible
    assert names(ctrt.stand_in._calls, "deserialize_cuda_engine") == [(13, version_compatible)]
    assert crt.stand_in._memory == {}


def test_ort_provider_reason_with_this_generation_installed(major: int) -> None:
    """The stub libnvinfer.so.N of this generation is on LD_LIBRARY_PATH in this session."""
    reason = ort_tensorrt_library_reason(_has_library)
    if major == 10:
        assert reason is None
    else:
        assert reason is not None and "needs TensorRT 10" in reason


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    from tests.assets import MODELS

    if not MODELS.is_dir():
        pytest.skip("real models not found (shared assets)")
    from tests.backends.tensorrt.workspace_fixture import make_workspace

    return make_workspace(tmp_path_factory.mktemp("real-ws"))


@pytest.mark.parametrize(
    ("variant", "source"), [("int8", "qdq"), ("int8", "calibrator"), ("fp16", "auto")]
)
def test_build_command_routes_against_real_api(
    trt: Any, cudart: Any, major: int, workspace, variant: str, source: str
) -> None:
    """`int8-studio build`'s engines (real calibration reader, real calibrator trampolines)."""
    from app.backends.tensorrt.engines import EngineOptions, ensure_engine, plan_job

    if major >= 11 and source == "calibrator":
        pytest.skip("TensorRT 11 has no calibrators (plan refuses)")
    problems: list[str] = []
    ctrt, crt = CheckedTrt(trt, problems), CheckedCudart(cudart, problems)
    job = plan_job(workspace, variant, EngineOptions(int8_source=source), major)
    summary = ensure_engine(workspace, job, trt_version=trt.__version__, gpu="Stand-in GPU",
                            capability="9.0", trt=ctrt, cudart=crt)  # fmt: skip
    assert problems == [] and summary["state"] == "built"
    if source == "calibrator":
        assert summary["calibration_batches"] == 6
