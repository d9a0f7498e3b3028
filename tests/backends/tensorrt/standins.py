"""Recording stand-ins for `tensorrt` and `cuda.bindings.runtime`, for argument plumbing only.

They record what the app asks of the API and play back a fake build; they do not build, run or
validate anything. Their public surface is checked against NVIDIA's real bindings by
real_api/test_standins_match.py: every public name a stand-in class offers exists on the real
class it names in `REAL` (per TensorRT generation), with the same parameter names. Bookkeeping
lives in `_`-prefixed attributes, which the check ignores.
"""

from __future__ import annotations

import ctypes
import enum
import json
from typing import Any

import numpy as np
import onnx

from tests.backends.tensorrt.standin_cudart import RecordingCudartStandIn

__all__ = ["RecordingCudartStandIn", "RecordingTrtStandIn", "names"]


def names(calls: list, prefix: str) -> list[tuple]:
    """Arguments of every recorded call named `prefix`, in order."""
    return [args for name, args in calls if name == prefix]


class _Record:
    """Base of the stand-in objects TensorRT's factories return: they share the call log."""

    def __init__(self, trt: RecordingTrtStandIn) -> None:
        self._trt = trt

    def _log(self, name: str, *args: Any) -> None:
        self._trt._calls.append((name, args))


class _Tensor(_Record):
    REAL = "ITensor"

    def __init__(self, trt: RecordingTrtStandIn, name: str, shape: list[int]) -> None:
        super().__init__(trt)
        self.name, self.shape = name, shape


class _Network(_Record):
    REAL = "INetworkDefinition"

    def __init__(self, trt: RecordingTrtStandIn) -> None:
        super().__init__(trt)
        self._inputs: list[_Tensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    def get_input(self, index: int) -> _Tensor:
        return self._inputs[index]


class _Profile(_Record):
    REAL = "IOptimizationProfile"

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
        self._log("profile.set_shape", input, min, opt, max)


class _TimingCache(_Record):
    REAL = "ITimingCache"

    def __init__(self, trt: RecordingTrtStandIn, data: bytes) -> None:
        super().__init__(trt)
        self._data = data

    def serialize(self) -> bytes:
        return self._data + b"+tactics"


class _Config(_Record):
    """IBuilderConfig as TensorRT 11 has it (no calibrator); `_Config10` adds 10's calibrator."""

    REAL = "IBuilderConfig"

    def __init__(self, trt: RecordingTrtStandIn) -> None:
        super().__init__(trt)
        self.progress_monitor: Any = None
        self.builder_optimization_level = 3
        self._timing = b""

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self._log("set_memory_pool_limit", pool.name, pool_size)

    def set_flag(self, flag: Any) -> None:
        self._log("set_flag", flag.name)

    def add_optimization_profile(self, profile: Any) -> int:
        self._log("add_optimization_profile")
        return 0

    def create_timing_cache(self, serialized_timing_cache: bytes) -> _TimingCache:
        self._log("create_timing_cache", bytes(serialized_timing_cache))
        return _TimingCache(self._trt, bytes(serialized_timing_cache))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self._log("set_timing_cache", ignore_mismatch)
        self._timing = cache._data
        return True

    def get_timing_cache(self) -> _TimingCache:
        return _TimingCache(self._trt, self._timing)


class _Config10(_Config):
    def __init__(self, trt: RecordingTrtStandIn) -> None:
        super().__init__(trt)
        self.int8_calibrator: Any = None

    def set_calibration_profile(self, profile: Any) -> bool:
        self._log("set_calibration_profile")
        return True


class _Context(_Record):
    """IExecutionContext of `_Engine`: output = 2 * input, on the cudart stand-in's memory."""

    REAL = "IExecutionContext"

    def __init__(self, trt: RecordingTrtStandIn) -> None:
        super().__init__(trt)
        self._shape: tuple[int, ...] = ()
        self._addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        self._log("set_input_shape", name, tuple(shape))
        self._shape = tuple(shape)
        return 1 <= shape[0] <= 8

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._addresses[name] = memory
        return True

    def get_tensor_shape(self, name: str) -> list[int]:
        return list(self._shape)

    def execute_async_v3(self, stream_handle: int) -> bool:
        self._log("execute_async_v3", stream_handle)
        n = int(np.prod(self._shape))
        src = (ctypes.c_float * n).from_address(self._addresses["images"])
        dst = (ctypes.c_float * n).from_address(self._addresses["scores"])
        np.frombuffer(dst, dtype=np.float32)[:] = np.frombuffer(src, dtype=np.float32) * 2
        return True


class _Engine(_Record):
    """ICudaEngine: input "images" [-1, 3] -> output "scores" = 2 * input."""

    REAL = "ICudaEngine"

    def __init__(self, trt: RecordingTrtStandIn) -> None:
        super().__init__(trt)
        self._tensors = {"images": (trt.TensorIOMode.INPUT, [-1, 3]),
                         "scores": (trt.TensorIOMode.OUTPUT, [-1, 3])}  # fmt: skip

    @property
    def num_io_tensors(self) -> int:
        return len(self._tensors)

    def get_tensor_name(self, index: int) -> str:
        return list(self._tensors)[index]

    def get_tensor_mode(self, name: str) -> Any:
        return self._tensors[name][0]

    def get_tensor_dtype(self, name: str) -> Any:
        return self._trt.DataType.FLOAT

    def get_tensor_shape(self, name: str) -> list[int]:
        return self._tensors[name][1]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
        return [[1, 3], [2, 3], [8, 3]]

    def create_execution_context(self) -> _Context:
        return _Context(self._trt)


class RecordingTrtStandIn:
    """Stand-in for the `tensorrt` module of one generation (10 or 11, from the version string).

    Its parser reads the real ONNX file's input names and shapes (dynamic dims as -1), so profile
    plumbing is exercised against a real model's inputs. `_dispatch` is how the fake build calls
    the app's callbacks; the real-API tests route it through TensorRT's C++ trampolines.
    """

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self) -> None:
            self._base_init_called = True

    class IProgressMonitor:
        def __init__(self) -> None:
            self._base_init_called = True

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class DataType(enum.IntEnum):
        FLOAT = 0
        BF16 = 7

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    @staticmethod
    def nptype(trt_type: Any) -> Any:
        if trt_type != RecordingTrtStandIn.DataType.FLOAT:
            raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
        return np.float32

    def __init__(self, version: str = "10.3.0", *, fail_build: bool = False) -> None:
        self.__version__ = version
        self._calls: list[tuple[str, tuple]] = []
        self._fail_build = fail_build
        self._config: Any = None
        self._logger: Any = None
        self._v10 = int(version.split(".")[0]) < 11
        flags = ["VERSION_COMPATIBLE"] + (["FP16", "INT8"] if self._v10 else [])
        self.BuilderFlag = enum.IntEnum("BuilderFlag", flags, start=0)
        net_flags = (["EXPLICIT_BATCH"] if self._v10 else []) + ["STRONGLY_TYPED"]
        self.NetworkDefinitionCreationFlag = enum.IntEnum(
            "NetworkDefinitionCreationFlag", net_flags, start=0 if self._v10 else 1
        )
        if self._v10:  # calibrator INT8 is gone in 11
            self.IInt8EntropyCalibrator2 = type(
                "IInt8EntropyCalibrator2", (_CalibratorBase,), {"_algo": "entropy2"}
            )
            self.IInt8MinMaxCalibrator = type(
                "IInt8MinMaxCalibrator", (_CalibratorBase,), {"_algo": "minmax"}
            )
        self.Builder, self.OnnxParser, self.Runtime = _factories(self)

    def _dispatch(self, obj: Any, base: str, method: str, *args: Any) -> Any:
        return getattr(obj, method)(*args)

    def _play_build(self, network: _Network, config: _Config) -> Any:
        monitor, call = config.progress_monitor, self._dispatch
        if monitor is not None:
            call(monitor, "IProgressMonitor", "phase_start", "Building engine", None, 4)
            for step in range(4):
                call(monitor, "IProgressMonitor", "phase_start", "Tactics", "Building engine", 2)
                call(monitor, "IProgressMonitor", "step_complete", "Tactics", 0)
                call(monitor, "IProgressMonitor", "phase_finish", "Tactics")
                if not call(monitor, "IProgressMonitor", "step_complete", "Building engine", step):
                    call(monitor, "IProgressMonitor", "phase_finish", "Building engine")
                    return None
            call(monitor, "IProgressMonitor", "phase_finish", "Building engine")
        calib = config.int8_calibrator if self._v10 else None  # gone from 11's config
        if calib is not None:
            base = type(calib).__mro__[1].__name__
            input_names = [t.name for t in network._inputs]
            self._calls.append(("calibrator.batch_size", (call(calib, base, "get_batch_size"),)))
            if call(calib, base, "read_calibration_cache") is None:
                while (ptrs := call(calib, base, "get_batch", input_names)) is not None:
                    self._calls.append(("calibrator.get_batch", tuple(ptrs)))
                call(calib, base, "write_calibration_cache",
                     memoryview(b"TRT-100300-EntropyCalibration2\n"))  # fmt: skip
        if self._fail_build:
            call(self._logger, "ILogger", "log", self.ILogger.ERROR, "Error Code 4: OOM (stand-in)")
            return None
        return bytearray(b"STAND-IN PLAN " + json.dumps(self._calls[:1]).encode())


class _CalibratorBase:
    _algo = ""

    def __init__(self) -> None:
        self._base_init_called = self._algo


def _factories(stand_in: RecordingTrtStandIn) -> tuple[type, type, type]:
    """Builder, OnnxParser and Runtime classes bound to one stand-in module."""

    class Builder:
        REAL = "Builder"

        def __init__(self, logger: Any) -> None:
            stand_in._logger = logger

        def create_network(self, flags: int = 0) -> _Network:
            stand_in._calls.append(("create_network", (flags,)))
            return _Network(stand_in)

        def create_builder_config(self) -> _Config:
            stand_in._config = (_Config10 if stand_in._v10 else _Config)(stand_in)
            return stand_in._config

        def create_optimization_profile(self) -> _Profile:
            return _Profile(stand_in)

        def build_serialized_network(self, network: _Network, config: _Config) -> Any:
            return stand_in._play_build(network, config)

    class OnnxParser:
        REAL = "OnnxParser"

        def __init__(self, network: _Network, logger: Any) -> None:
            self._network, self._errors = network, []

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> str:
            return self._errors[index]

        def parse_from_file(self, model: str) -> bool:
            try:
                graph = onnx.load(model, load_external_data=False).graph
            except Exception as exc:
                self._errors = [f"ModelImporter: {exc.__class__.__name__}", "node 0: bad"]
                return False
            weights = {i.name for i in graph.initializer}
            for vi in graph.input:
                if vi.name not in weights:
                    dims = [d.dim_value if d.HasField("dim_value") else -1
                            for d in vi.type.tensor_type.shape.dim]  # fmt: skip
                    self._network._inputs.append(_Tensor(stand_in, vi.name, dims))
            return True

    class Runtime:
        REAL = "Runtime"

        def __init__(self, logger: Any) -> None:
            stand_in._calls.append(("Runtime", ()))
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, serialized_engine: bytes) -> _Engine | None:
            data = bytes(serialized_engine)
            stand_in._calls.append(
                ("deserialize_cuda_engine", (len(data), self.engine_host_code_allowed))
            )
            return _Engine(stand_in) if data.startswith(b"STAND-IN") else None

    return Builder, OnnxParser, Runtime
