"""Native TensorRT backend: build planning, engine records, status, and argument plumbing.

TensorRT cannot be installed on the development machines (shared/docs/GPU.md). The pure logic
(plan_build, engine records) is tested directly. Builder and calibrator *plumbing* is tested
against `RecordingTrtStandIn` / `RecordingCudartStandIn`, which only record what our code asks
of the API; they prove nothing about TensorRT itself. Tests that need the real library and a
GPU are marked and skipped here.
"""

from __future__ import annotations

import ctypes
import enum
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import pytest

from app.backends.tensorrt import (
    BuildSettings,
    EngineExpectation,
    EngineRecord,
    check_engine,
    plan_build,
    side_path,
    tensorrt_status,
)
from app.backends.tensorrt.builder import build_engine
from app.backends.tensorrt.calibrator import make_calibrator
from app.backends.tensorrt.deps import TRT_INSTALL_HINT
from app.backends.tensorrt.engine_header import sha256_file, write_engine
from app.backends.tensorrt.runtime import TensorRTRunner
from app.core.errors import Cancelled, CancelToken, UserError
from tests.assets import YOLOX_ONNX as YOLOX

needs_trt_gpu = pytest.mark.skipif(
    not tensorrt_status().available,
    reason="needs TensorRT and an NVIDIA GPU; not installable on this machine",
)
needs_yolox = pytest.mark.skipif(not YOLOX.is_file(), reason="YOLOX-Nano not in shared assets")


# ------------------------------------------------------------------------------------------
# plan_build: the 10 -> 11 rules
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "major", "net", "flags", "calib"),
    [
        ({}, 10, (), (), False),
        ({}, 11, (), (), False),
        ({"precision": "fp16"}, 10, (), ("FP16",), False),
        ({"precision": "fp16", "graph": "fp16"}, 10, ("STRONGLY_TYPED",), (), False),
        ({"precision": "fp16", "graph": "fp16"}, 11, (), (), False),
        ({"precision": "int8", "graph": "qdq"}, 10, ("STRONGLY_TYPED",), (), False),
        ({"precision": "int8", "graph": "qdq"}, 11, (), (), False),
        ({"precision": "int8", "int8_source": "calibrator"}, 10, (), ("INT8",), True),
        (
            {"precision": "int8", "int8_source": "calibrator", "int8_fp16_fallback": True},
            10,
            (),
            ("INT8", "FP16"),
            True,
        ),
        ({"version_compatible": True}, 11, (), ("VERSION_COMPATIBLE",), False),
        ({"precision": "int8", "graph": "qdq", "version_compatible": True}, 10,
         ("STRONGLY_TYPED",), ("VERSION_COMPATIBLE",), False),
    ],
)  # fmt: skip
def test_plan_flags(kw: dict, major: int, net: tuple, flags: tuple, calib: bool) -> None:
    plan = plan_build(BuildSettings(**kw), major)
    assert plan.network_flags == net
    assert plan.builder_flags == flags
    assert plan.use_calibrator is calib
    # Never mix STRONGLY_TYPED with precision flags (TensorRT rejects it: NVIDIA/TensorRT#4253).
    assert not ("STRONGLY_TYPED" in net and {"FP16", "INT8"} & set(flags))
    # 11 has no weak typing at all.
    if major >= 11:
        assert plan.strongly_typed and not {"FP16", "INT8"} & set(flags)


def test_plan_calibrator_choice_and_limits() -> None:
    s = BuildSettings(precision="int8", int8_source="calibrator", calibrator="minmax",
                      workspace_bytes=123, opt_level=1)  # fmt: skip
    plan = plan_build(s, 10)
    assert plan.calibrator == "minmax" and plan.workspace_bytes == 123 and plan.opt_level == 1
    assert plan_build(BuildSettings(precision="int8", graph="qdq"), 10).calibrator is None


def test_network_flag_bits_resolve_names() -> None:
    trt = RecordingTrtStandIn("10.3.0")
    plan = plan_build(BuildSettings(precision="int8", graph="qdq"), 10)
    assert plan.network_flag_bits(trt) == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert plan_build(BuildSettings(), 11).network_flag_bits(trt) == 0


@pytest.mark.parametrize(
    ("kw", "major", "message"),
    [
        ({"precision": "int8", "int8_source": "calibrator"}, 11,
         "TensorRT 11 removed calibrator INT8; use the Q/DQ graph"),
        ({"precision": "fp16"}, 11, "TensorRT 11 has no FP16 builder flag"),
        ({"precision": "int8"}, 10, "INT8 from Q/DQ needs the Q/DQ graph"),
        ({"precision": "int8", "graph": "qdq", "int8_source": "calibrator"}, 10,
         "calibrator INT8 calibrates the FP32 graph"),
        ({"graph": "qdq"}, 10, "Q/DQ graph builds an INT8 engine"),
        ({"graph": "fp16"}, 11, "FP16 graph cannot build a FP32 engine"),
        ({"precision": "fp8"}, 10, "unknown precision"),
        ({"calibrator": "percentile"}, 10, "unknown calibrator"),
        ({"opt_level": 9}, 10, "0..5"),
        ({"workspace_bytes": 0}, 10, "larger than 0"),
        ({}, 8, "TensorRT 8 is too old"),
        ({"profiles": {"images": ((2, 3), (1, 3), (4, 3))}}, 10, "min <= opt <= max"),
    ],
)  # fmt: skip
def test_plan_refuses_impossible_combos(kw: dict, major: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        plan_build(BuildSettings(**kw), major)


def test_calibrator_on_11_message_without_calibrator_hint() -> None:
    with pytest.raises(UserError) as err:
        plan_build(BuildSettings(precision="int8"), 11)
    assert "calibrator" not in str(err.value)  # 11 has no calibrator to suggest


def test_identity_leaves_out_paths_and_is_json() -> None:
    s = BuildSettings(timing_cache_path="/tmp/x.cache", profiles={"a": ((1,), (2,), (3,))})
    ident = s.identity()
    assert "timing_cache_path" not in ident
    assert json.loads(json.dumps(ident))["profiles"] == {"a": [[1], [2], [3]]}


# ------------------------------------------------------------------------------------------
# engine records
# ------------------------------------------------------------------------------------------
def _record(**kw: Any) -> EngineRecord:
    base = dict(trt_version="10.14.1.48", gpu_name="NVIDIA H100 80GB HBM3",
                compute_capability="9.0", model_sha256="a" * 64,
                settings=BuildSettings(precision="fp16", graph="fp16").identity())  # fmt: skip
    return EngineRecord(**{**base, **kw})


def _expect(**kw: Any) -> EngineExpectation:
    r = _record()
    base = dict(trt_version=r.trt_version, gpu_name=r.gpu_name,
                compute_capability=r.compute_capability, model_sha256=r.model_sha256,
                settings=r.settings)  # fmt: skip
    return EngineExpectation(**{**base, **kw})


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    path = tmp_path / "model_fp16.engine"
    write_engine(path, b"PLAN" * 1000, _record())
    return path


def test_record_round_trip(engine: Path) -> None:
    side = side_path(engine)
    assert side.name == "model_fp16.engine.json"
    data = json.loads(side.read_text())
    assert data["engine_sha256"] == sha256_file(engine) and data["engine_size"] == 4000
    assert data["app_version"] and data["trt_version"] == "10.14.1.48"
    record = check_engine(engine, _expect())
    assert record is not None and record.settings["precision"] == "fp16"
    assert not list(engine.parent.glob("*.part"))  # atomic writes left no temp files


def test_tampered_engine(engine: Path) -> None:
    data = bytearray(engine.read_bytes())
    data[10] ^= 0xFF
    engine.write_bytes(bytes(data))
    with pytest.raises(UserError, match="engine bytes were altered"):
        check_engine(engine, _expect())


def test_truncated_engine(engine: Path) -> None:
    engine.write_bytes(engine.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"truncated or replaced \(1000 bytes on disk, 4000"):
        check_engine(engine, _expect())


def test_other_model(engine: Path) -> None:
    with pytest.raises(UserError, match="built from another model"):
        check_engine(engine, _expect(model_sha256="b" * 64))


def test_other_trt_version(engine: Path) -> None:
    with pytest.raises(UserError, match=r"stale TensorRT version: built with 10\.14\.1\.48, this "
                                        r"machine has 11\.0\.0\.1"):  # fmt: skip
        check_engine(engine, _expect(trt_version="11.0.0.1"))


def test_other_gpu(engine: Path) -> None:
    with pytest.raises(UserError, match=r"another GPU: NVIDIA H100 80GB HBM3 \(sm 9.0\), this is "
                                        r"NVIDIA L4 \(sm 8.9\)"):  # fmt: skip
        check_engine(engine, _expect(gpu_name="NVIDIA L4", compute_capability="8.9"))


def test_settings_differ_names_the_key(engine: Path) -> None:
    wanted = BuildSettings(precision="fp16", graph="fp16", opt_level=5).identity()
    with pytest.raises(UserError, match="settings differ: opt_level 3 -> 5"):
        check_engine(engine, _expect(settings=wanted))


def test_all_differences_reported_together(engine: Path) -> None:
    with pytest.raises(UserError) as err:
        check_engine(engine, _expect(trt_version="10.15.0.1", model_sha256="c" * 64))
    assert "stale TensorRT version" in str(err.value) and "another model" in str(err.value)


def test_unchecked_fields_are_skipped(engine: Path) -> None:
    assert check_engine(engine, EngineExpectation()) is not None


def test_missing_side_file(engine: Path) -> None:
    side_path(engine).unlink()
    with pytest.raises(UserError, match="not built by INT8 Studio: engines can run code through "
                                        "plugins; rebuild or confirm"):  # fmt: skip
        check_engine(engine, _expect())
    assert check_engine(engine, _expect(), allow_unrecorded=True) is None


def test_unreadable_side_file_and_missing_engine(engine: Path, tmp_path: Path) -> None:
    side_path(engine).write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        check_engine(engine, _expect())
    with pytest.raises(UserError, match="engine file not found"):
        check_engine(tmp_path / "nope.engine", _expect())


def test_new_engine_with_stale_record_is_caught(engine: Path) -> None:
    """A crash between the two writes leaves a new engine beside the old record."""
    engine.write_bytes(b"X" * 4000)  # same size, other bytes
    with pytest.raises(UserError, match="altered"):
        check_engine(engine, _expect())


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


# ------------------------------------------------------------------------------------------
# recording stand-ins (plumbing only)
# ------------------------------------------------------------------------------------------
class RecordingCudartStandIn:  # method names mirror cuda-python's
    """Stand-in for `cuda.bindings.runtime`, for plumbing tests only: it records calls and backs
    "device memory" with host ctypes buffers so copies can be checked. It is not CUDA."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self, devices: int = 1) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.memory: dict[int, ctypes.Array] = {}
        self.devices = devices

    def _ok(self, *values: Any) -> tuple:
        return (self.cudaError_t.cudaSuccess, *values)

    def cudaGetDeviceCount(self) -> tuple:
        return self._ok(self.devices)

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        return self._ok(SimpleNamespace(name=b"Stand-in GPU\x00\x00\x00", major=9, minor=0))

    def cudaMalloc(self, nbytes: int) -> tuple:
        buf = (ctypes.c_byte * nbytes)()
        ptr = ctypes.addressof(buf)
        self.memory[ptr] = buf
        self.calls.append(("cudaMalloc", (nbytes,)))
        return self._ok(ptr)

    def cudaMemcpy(self, dst: int, src: int, nbytes: int, kind: Any) -> tuple:
        ctypes.memmove(dst, src, nbytes)
        self.calls.append(("cudaMemcpy", (dst, nbytes, kind)))
        return self._ok()

    def cudaFree(self, ptr: int) -> tuple:
        del self.memory[ptr]
        self.calls.append(("cudaFree", (ptr,)))
        return self._ok()

    def cudaMallocHost(self, nbytes: int) -> tuple:
        return self.cudaMalloc(nbytes)

    def cudaFreeHost(self, ptr: int) -> tuple:
        return self.cudaFree(ptr)

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: Any, stream: Any) -> tuple:
        self.calls.append(("cudaMemcpyAsync", (kind, stream)))
        ctypes.memmove(dst, src, nbytes)
        return self._ok()

    def cudaSetDevice(self, device: int) -> tuple:
        return self._ok()

    def cudaStreamCreate(self) -> tuple:
        self.calls.append(("cudaStreamCreate", ()))
        return self._ok(7001)

    def cudaStreamSynchronize(self, stream: Any) -> tuple:
        self.calls.append(("cudaStreamSynchronize", (stream,)))
        return self._ok()

    def cudaStreamDestroy(self, stream: Any) -> tuple:
        self.calls.append(("cudaStreamDestroy", (stream,)))
        return self._ok()

    def cudaEventCreate(self) -> tuple:
        self.calls.append(("cudaEventCreate", ()))
        return self._ok(len(self.calls))

    def cudaEventRecord(self, event: Any, stream: Any) -> tuple:
        self.calls.append(("cudaEventRecord", (event, stream)))
        return self._ok()

    def cudaEventElapsedTime(self, start: Any, end: Any) -> tuple:
        return self._ok(0.25)

    def cudaEventDestroy(self, event: Any) -> tuple:
        self.calls.append(("cudaEventDestroy", (event,)))
        return self._ok()

    def read(self, ptr: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(self.memory[ptr], dtype=np.float32).reshape(shape).copy()


class _Recorder:
    def __init__(self, log: list, name: str) -> None:
        self._log, self._name = log, name

    def __getattr__(self, attr: str) -> Any:
        def record(*args: Any, **kw: Any) -> Any:
            self._log.append((f"{self._name}.{attr}", args))
            return len(self._log)

        return record


class RecordingTrtStandIn:
    """Stand-in for the `tensorrt` module, for plumbing tests only: it records what the builder
    and calibrator ask for and plays back a fake build. It does not build or validate anything.

    Its parser reads the real ONNX file's input names and shapes (dynamic dims as -1), so
    profile plumbing is exercised against a real model's inputs.
    """

    class NetworkDefinitionCreationFlag(enum.IntEnum):
        EXPLICIT_BATCH = 0
        STRONGLY_TYPED = 1

    class BuilderFlag(enum.IntEnum):
        FP16 = 0
        INT8 = 1
        VERSION_COMPATIBLE = 2

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self) -> None:
            self.base_init_called = True

    class IProgressMonitor:
        def __init__(self) -> None:
            self.base_init_called = True

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            self.base_init_called = "entropy2"

    class IInt8MinMaxCalibrator:
        def __init__(self) -> None:
            self.base_init_called = "minmax"

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class DataType(enum.IntEnum):
        FLOAT = 0
        BF16 = 7

    @staticmethod
    def nptype(dtype: Any) -> Any:
        if dtype != RecordingTrtStandIn.DataType.FLOAT:
            raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
        return np.float32

    def __init__(self, version: str = "10.3.0", *, fail_build: bool = False) -> None:
        self.__version__ = version
        self.calls: list[tuple[str, tuple]] = []
        self.fail_build = fail_build
        self.config: Any = None
        self.network: Any = None
        stand_in = self

        class Builder:
            def __init__(self, logger: Any) -> None:
                stand_in.logger = logger

            def create_network(self, flags: int) -> Any:
                stand_in.calls.append(("create_network", (flags,)))
                stand_in.network = SimpleNamespace(inputs=[], num_inputs=0)
                stand_in.network.get_input = lambda i: stand_in.network.inputs[i]
                return stand_in.network

            def create_builder_config(self) -> Any:
                stand_in.config = _StandInConfig(stand_in.calls)
                return stand_in.config

            def create_optimization_profile(self) -> Any:
                return _Recorder(stand_in.calls, "profile")

            def build_serialized_network(self, network: Any, config: Any) -> Any:
                return stand_in._play_build(network, config)

        class OnnxParser:
            def __init__(self, network: Any, logger: Any) -> None:
                self.network, self.errors = network, []

            @property
            def num_errors(self) -> int:
                return len(self.errors)

            def get_error(self, i: int) -> str:
                return self.errors[i]

            def parse_from_file(self, path: str) -> bool:
                try:
                    graph = onnx.load(path, load_external_data=False).graph
                except Exception as exc:
                    self.errors = [f"ModelImporter: {exc.__class__.__name__}", "node 0: bad"]
                    return False
                weights = {i.name for i in graph.initializer}
                for vi in graph.input:
                    if vi.name not in weights:
                        dims = [d.dim_value if d.HasField("dim_value") else -1
                                for d in vi.type.tensor_type.shape.dim]  # fmt: skip
                        self.network.inputs.append(SimpleNamespace(name=vi.name, shape=dims))
                self.network.num_inputs = len(self.network.inputs)
                return True

        class Runtime:
            def __init__(self, logger: Any) -> None:
                stand_in.calls.append(("Runtime", ()))

            def deserialize_cuda_engine(self, data: bytes) -> Any:
                stand_in.calls.append(("deserialize_cuda_engine", (len(data),)))
                return _StandInEngine(stand_in) if data.startswith(b"STAND-IN") else None

        self.Builder, self.OnnxParser, self.Runtime = Builder, OnnxParser, Runtime

    def _play_build(self, network: Any, config: Any) -> Any:
        monitor = config.progress_monitor
        if monitor is not None:
            monitor.phase_start("Building engine", None, 4)
            for step in range(4):
                monitor.phase_start("Tactics", "Building engine", 2)
                monitor.step_complete("Tactics", 0)
                monitor.phase_finish("Tactics")
                if not monitor.step_complete("Building engine", step):
                    monitor.phase_finish("Building engine")
                    return None
            monitor.phase_finish("Building engine")
        calib = config.int8_calibrator
        if calib is not None:
            names = [t.name for t in network.inputs]
            self.calls.append(("calibrator.batch_size", (calib.get_batch_size(),)))
            if calib.read_calibration_cache() is None:
                while (ptrs := calib.get_batch(names)) is not None:
                    self.calls.append(("calibrator.get_batch", tuple(ptrs)))
                calib.write_calibration_cache(memoryview(b"TRT-100300-EntropyCalibration2\n"))
        if self.fail_build:
            self.logger.log(self.ILogger.ERROR, "Error Code 4: out of memory (stand-in)")
            return None
        return bytearray(b"STAND-IN PLAN " + json.dumps(self.calls[:1]).encode())


class _StandInConfig:
    """Builder-config part of RecordingTrtStandIn (records calls; timing cache is bytes)."""

    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.int8_calibrator: Any = None
        self.progress_monitor: Any = None
        self.builder_optimization_level = 3
        self.timing = b""

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.calls.append(("set_memory_pool_limit", (pool.name, size)))

    def set_flag(self, flag: Any) -> None:
        self.calls.append(("set_flag", (flag.name,)))

    def add_optimization_profile(self, profile: Any) -> int:
        self.calls.append(("add_optimization_profile", ()))
        return 0

    def set_calibration_profile(self, profile: Any) -> None:
        self.calls.append(("set_calibration_profile", ()))

    def create_timing_cache(self, data: bytes) -> Any:
        self.calls.append(("create_timing_cache", (bytes(data),)))
        return SimpleNamespace(data=bytes(data))

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        self.calls.append(("set_timing_cache", (ignore_mismatch,)))
        self.timing = cache.data
        return True

    def get_timing_cache(self) -> Any:
        return SimpleNamespace(serialize=lambda: self.timing + b"+tactics")


class _StandInEngine:
    """Engine part of RecordingTrtStandIn: input "images" [-1, 3] -> output "scores" = 2 * input,
    computed on the stand-in's host-backed "device" memory so copies in and out can be checked."""

    def __init__(self, trt: RecordingTrtStandIn) -> None:
        self.trt = trt
        self.tensors = {"images": (trt.TensorIOMode.INPUT, [-1, 3]),
                        "scores": (trt.TensorIOMode.OUTPUT, [-1, 3])}  # fmt: skip
        self.num_io_tensors = 2

    def get_tensor_name(self, i: int) -> str:
        return list(self.tensors)[i]

    def get_tensor_mode(self, name: str) -> Any:
        return self.tensors[name][0]

    def get_tensor_dtype(self, name: str) -> Any:
        return self.trt.DataType.FLOAT

    def get_tensor_shape(self, name: str) -> list[int]:
        return self.tensors[name][1]

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple:
        return ([1, 3], [2, 3], [8, 3])

    def create_execution_context(self) -> Any:
        calls = self.trt.calls
        ctx = SimpleNamespace(shape=None, addresses={})

        def set_input_shape(name: str, shape: tuple) -> bool:
            calls.append(("set_input_shape", (name, tuple(shape))))
            ctx.shape = tuple(shape)
            return 1 <= shape[0] <= 8

        def set_tensor_address(name: str, ptr: int) -> bool:
            ctx.addresses[name] = ptr
            return True

        def execute_async_v3(stream: int) -> bool:
            calls.append(("execute_async_v3", (stream,)))
            n = int(np.prod(ctx.shape))
            src = np.frombuffer((ctypes.c_float * n).from_address(ctx.addresses["images"]),
                                dtype=np.float32)  # fmt: skip
            dst = np.frombuffer((ctypes.c_float * n).from_address(ctx.addresses["scores"]),
                                dtype=np.float32)  # fmt: skip
            dst[:] = src * 2
            return True

        ctx.set_input_shape, ctx.set_tensor_address = set_input_shape, set_tensor_address
        ctx.execute_async_v3 = execute_async_v3
        ctx.get_tensor_shape = lambda name: list(ctx.shape)
        return ctx


def _names(calls: list, prefix: str) -> list[tuple]:
    return [args for name, args in calls if name == prefix]


# ------------------------------------------------------------------------------------------
# calibrator plumbing
# ------------------------------------------------------------------------------------------
def test_calibrator_feeds_batches_in_name_order_and_frees(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn(), RecordingCudartStandIn()
    rng = np.random.default_rng(0)
    batches = [{"a": rng.random((2, 3), np.float32), "b": rng.random((2, 5), np.float32)}
               for _ in range(3)]  # fmt: skip
    seen: list[int] = []
    cal = make_calibrator(trt, batches, tmp_path / "c.cache", "minmax", cudart=cudart,
                          progress=seen.append)  # fmt: skip
    assert isinstance(cal, trt.IInt8MinMaxCalibrator) and cal.base_init_called == "minmax"
    assert cal.get_batch_size() == 2
    for batch in batches:
        ptr_b, ptr_a = cal.get_batch(["b", "a"])
        np.testing.assert_array_equal(cudart.read(ptr_a, (2, 3)), batch["a"])
        np.testing.assert_array_equal(cudart.read(ptr_b, (2, 5)), batch["b"])
    assert len(_names(cudart.calls, "cudaMalloc")) == 2  # once per input, not per batch
    assert len(_names(cudart.calls, "cudaMemcpy")) == 6
    assert cal.get_batch(["b", "a"]) is None
    assert cudart.memory == {} and seen == [1, 2, 3]
    assert cal.error is None


def test_calibrator_cache_read_write(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn(), RecordingCudartStandIn()
    cache = tmp_path / "sub" / "calib.cache"
    cal = make_calibrator(trt, [], cache, cudart=cudart)
    assert cal.base_init_called == "entropy2"
    assert cal.read_calibration_cache() is None
    cal.write_calibration_cache(memoryview(b"TRT-100300-EntropyCalibration2\nx: 3c010204\n"))
    assert cache.read_bytes().startswith(b"TRT-100300")
    assert cal.read_calibration_cache() == cache.read_bytes()
    assert not list(cache.parent.glob("*.part"))


def test_calibrator_errors_are_kept_not_thrown_into_tensorrt(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn(), RecordingCudartStandIn()
    batches = [{"a": np.zeros((1, 3), np.float32)}, {"a": np.zeros((2, 3), np.float32)}]
    cal = make_calibrator(trt, batches, None, cudart=cudart)
    assert cal.get_batch(["a"]) is not None
    assert cal.get_batch(["a"]) is None  # shape changed: stop, keep the reason
    assert isinstance(cal.error, UserError) and "use one shape throughout" in str(cal.error)
    assert cudart.memory == {}

    cal = make_calibrator(trt, [{"x": np.zeros(3, np.float32)}], None, cudart=cudart)
    assert cal.get_batch(["images"]) is None and "no input 'images'" in str(cal.error)


def test_calibrator_cancel_and_rewind(tmp_path: Path) -> None:
    trt, cudart, token = RecordingTrtStandIn(), RecordingCudartStandIn(), CancelToken()
    batches = [{"a": np.ones((1, 2), np.float32)}] * 2
    cal = make_calibrator(trt, batches, None, cudart=cudart, cancel=token)
    assert cal.get_batch(["a"]) is not None
    token.cancel()
    assert cal.get_batch(["a"]) is None
    cal.rewind()
    assert cal.batches_served == 0
    cal.free()
    assert cudart.memory == {}
    with pytest.raises(UserError, match="unknown calibrator"):
        make_calibrator(trt, batches, None, "percentile", cudart=cudart)


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
    assert _names(trt.calls, "create_network") == [(1 << 1,)]  # STRONGLY_TYPED bit only
    assert _names(trt.calls, "set_flag") == []
    assert _names(trt.calls, "set_memory_pool_limit") == [("WORKSPACE", 2 << 30)]
    assert trt.config.builder_optimization_level == 4
    assert _names(trt.calls, "create_timing_cache") == [(b"OLD",)]
    assert timing.read_bytes() == b"OLD+tactics"
    assert _names(trt.calls, "add_optimization_profile") == []  # the model is static
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
    assert _names(trt.calls, "create_network") == [(0,)]
    assert _names(trt.calls, "set_flag") == [("FP16",)]
    trt11 = RecordingTrtStandIn("11.0.0.5")
    with pytest.raises(UserError, match="TensorRT 11 has no FP16 builder flag"):
        build_engine(YOLOX, BuildSettings(precision="fp16"), tmp_path / "b.engine", trt=trt11,
                     cudart=cudart)  # fmt: skip
    assert trt11.calls == []  # refused before touching TensorRT


def test_build_dynamic_profile_and_calibrator_on_10(tmp_path: Path, dynamic_yolox: Path) -> None:
    trt, cudart = RecordingTrtStandIn("10.3.0"), RecordingCudartStandIn()
    shapes = ((1, 3, 416, 416), (2, 3, 416, 416), (4, 3, 416, 416))
    settings = BuildSettings(precision="int8", int8_source="calibrator",
                             profiles={"images": shapes})  # fmt: skip
    batches = [{"images": np.full((2, 3, 416, 416), k, np.float32)} for k in range(3)]
    cache = tmp_path / "calib.cache"
    summary = build_engine(dynamic_yolox, settings, tmp_path / "c.engine", batches=batches,
                           calibration_cache=cache, trt=trt, cudart=cudart)  # fmt: skip
    assert ("profile.set_shape", ("images", *shapes)) in trt.calls
    assert _names(trt.calls, "add_optimization_profile") == [()]
    assert _names(trt.calls, "set_calibration_profile") == [()]
    assert _names(trt.calls, "set_flag") == [("INT8",)]
    assert _names(trt.calls, "calibrator.batch_size") == [(2,)]
    assert len(_names(trt.calls, "calibrator.get_batch")) == 3
    assert summary["calibration_batches"] == 3 and cache.read_bytes().startswith(b"TRT-")
    assert cudart.memory == {}  # device buffers freed after the build


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
        assert ("set_input_shape", ("images", (4, 3))) in trt.calls
        assert _names(trt.calls, "execute_async_v3") == [(7001,), (7001,)]
        with pytest.raises(
            UserError, match=r"outside the engine's profile \(\[1, 3\] \.\. \[8, 3\]"
        ):
            runner.infer(np.ones((9, 3), np.float32))
    assert cudart.memory == {}  # device and pinned buffers freed
    assert len(_names(cudart.calls, "cudaEventDestroy")) == 4
    assert _names(cudart.calls, "cudaStreamDestroy") == [(7001,)]


def test_runner_refuses_engine_from_other_trt(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn("10.4.0"), RecordingCudartStandIn()
    with pytest.raises(UserError, match="stale TensorRT version"):
        TensorRTRunner(_stand_in_engine(tmp_path, "10.3.0"), trt=trt, cudart=cudart).open()
    assert _names(trt.calls, "deserialize_cuda_engine") == []  # checked before TensorRT sees it


def test_version_compatible_engine_runs_on_later_same_major(tmp_path: Path) -> None:
    path = tmp_path / "vc.engine"
    settings = BuildSettings(version_compatible=True).identity()
    write_engine(path, b"PLAN", _record(trt_version="10.3.0", settings=settings))
    assert check_engine(path, _expect(trt_version="10.9.0", settings=settings)) is not None
    with pytest.raises(UserError, match="stale"):
        check_engine(path, _expect(trt_version="11.0.0", settings=settings))
    with pytest.raises(UserError, match="stale"):
        check_engine(path, _expect(trt_version="10.2.0", settings=settings))


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
