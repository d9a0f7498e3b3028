"""Run a TensorRT engine: `TensorRTRunner`, with separate H2D / compute / D2H timings.

Uses only the name-based I/O API (TensorRT 10 and 11; binding indices are gone since 10.0) and
cuda-python for memory, one stream and four events per call. Engines are checked against their
INT8 Studio record before TensorRT deserializes them (see engine_header.py for why).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.base import Runner, TensorInfo
from app.backends.tensorrt.builder import make_logger
from app.backends.tensorrt.deps import (
    cuda_call,
    gpu_identity,
    import_cudart,
    import_tensorrt,
    native_handle,
)
from app.backends.tensorrt.engine_header import EngineExpectation, check_engine
from app.core.errors import UserError


@dataclass
class _Buffer:
    """Pinned host memory and device memory of one I/O tensor, grown when a larger shape comes."""

    dtype: np.dtype
    host: int = 0
    device: int = 0
    capacity: int = 0

    def host_view(self, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        raw = (ctypes.c_byte * (count * self.dtype.itemsize)).from_address(self.host)
        return np.frombuffer(raw, dtype=self.dtype, count=count).reshape(shape)


class TensorRTRunner(Runner):
    """Native TensorRT runner for an engine built by INT8 Studio (or one the user confirmed)."""

    backend = "tensorrt"

    def __init__(
        self,
        engine_path: str | os.PathLike[str],
        *,
        model_sha256: str | None = None,
        settings: dict[str, Any] | None = None,
        allow_unrecorded: bool = False,
        device: int = 0,
        trt: Any = None,
        cudart: Any = None,
    ) -> None:
        """model_sha256 / settings: what the engine must have been built from (None: unchecked).

        allow_unrecorded: the user confirmed an engine without an INT8 Studio record.
        trt / cudart: the modules, for tests; imported lazily on open() when None.
        """
        super().__init__()
        self.engine_path = Path(engine_path)
        if self.engine_path.suffix.lower() == ".onnx":  # a variant's graph, not its engine
            raise UserError(
                f"{self.engine_path.name} is an ONNX graph; the tensorrt backend runs engines: "
                "build the variant's engine (Variants > Engines, or `int8-studio build`)"
            )
        self.model_sha256 = model_sha256
        self.settings = settings
        self.allow_unrecorded = allow_unrecorded
        self.device = device
        self.last_timings: dict[str, float] = {}
        self._trt: Any = trt
        self._rt: Any = cudart
        self._logger: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._events: list[Any] = []
        self._buffers: dict[str, _Buffer] = {}
        self._dynamic: set[str] = set()

    # lifecycle -------------------------------------------------------------------------------
    def _open(self) -> None:
        trt = self._trt if self._trt is not None else import_tensorrt()
        rt = self._rt if self._rt is not None else import_cudart()
        self._trt, self._rt = trt, rt
        cuda_call(rt, rt.cudaSetDevice(self.device))
        gpu_name, capability = gpu_identity(rt, self.device)
        record = check_engine(
            self.engine_path,
            EngineExpectation(
                trt_version=str(trt.__version__),
                gpu_name=gpu_name,
                compute_capability=capability,
                model_sha256=self.model_sha256,
                settings=self.settings,
            ),
            allow_unrecorded=self.allow_unrecorded,
        )
        try:
            self._load(
                trt, rt, host_code=bool(record and record.settings.get("version_compatible"))
            )
        except BaseException:
            self._close()
            raise
        self.active_provider = f"TensorRT {trt.__version__} on {gpu_name}"
        self.fallback_note = ""

    def _load(self, trt: Any, rt: Any, *, host_code: bool = False) -> None:
        """Deserialize the engine and allocate the stream and events.

        host_code: the record says the engine was built version-compatible. Such plans embed the
        lean runtime (host code), and trt.Runtime refuses them unless this is allowed, as trtexec
        does for them. Only set from our own record, never for an unrecorded engine.
        """
        self._logger = make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        if host_code:
            self._runtime.engine_host_code_allowed = True
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            detail = "; ".join(self._logger.errors[-2:]) or "TensorRT gave no reason"
            raise UserError(f"TensorRT cannot load {self.engine_path.name}: {detail}; rebuild it")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise UserError("TensorRT could not create an execution context (GPU memory?)")
        self._stream = cuda_call(rt, rt.cudaStreamCreate())
        self._events = [cuda_call(rt, rt.cudaEventCreate()) for _ in range(4)]

        self.inputs, self.outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            mode = self._engine.get_tensor_mode(name)
            trt_dtype = self._engine.get_tensor_dtype(name)
            try:
                dtype = np.dtype(trt.nptype(trt_dtype))
            except TypeError as exc:  # BF16 / FP8 / INT4 have no numpy type
                raise UserError(
                    f"engine tensor '{name}' is {trt_dtype}, which numpy cannot hold; "
                    "rebuild from a graph with FP32/FP16 inputs and outputs (keep_io_types)"
                ) from exc
            shape = [int(d) for d in self._engine.get_tensor_shape(name)]
            info = TensorInfo(
                name, [d if d >= 0 else f"dim{k}" for k, d in enumerate(shape)], dtype.name
            )
            self._buffers[name] = _Buffer(dtype)
            if mode == trt.TensorIOMode.INPUT:
                self.inputs.append(info)
                if any(d < 0 for d in shape):
                    self._dynamic.add(name)
            elif mode == trt.TensorIOMode.OUTPUT:
                self.outputs.append(info)

    def _close(self) -> None:
        rt = self._rt
        if rt is not None:
            for buf in self._buffers.values():
                if buf.device:
                    cuda_call(rt, rt.cudaFree(buf.device))
                if buf.host:
                    cuda_call(rt, rt.cudaFreeHost(buf.host))
            for ev in self._events:
                cuda_call(rt, rt.cudaEventDestroy(ev))
            if self._stream is not None:
                cuda_call(rt, rt.cudaStreamDestroy(self._stream))
        self._buffers, self._events, self._stream = {}, [], None
        # Context before engine before runtime: each depends on the next.
        self._context = None
        self._engine = None
        self._runtime = None

    # inference -------------------------------------------------------------------------------
    def _ensure(self, buf: _Buffer, nbytes: int) -> None:
        if nbytes <= buf.capacity:
            return
        rt = self._rt
        if buf.device:
            cuda_call(rt, rt.cudaFree(buf.device))
            buf.device = 0
        if buf.host:
            cuda_call(rt, rt.cudaFreeHost(buf.host))
            buf.host = 0
        buf.device = int(cuda_call(rt, rt.cudaMalloc(nbytes)))
        # Pinned host memory: cudaMemcpyAsync from pageable memory would be synchronous.
        buf.host = int(cuda_call(rt, rt.cudaMallocHost(nbytes)))
        buf.capacity = nbytes

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        rt, ctx, stream = self._rt, self._context, self._stream
        h2d = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        ev_start, ev_h2d, ev_compute, ev_d2h = self._events

        staged: list[tuple[_Buffer, int]] = []
        for info in self.inputs:
            buf = self._buffers[info.name]
            arr = np.ascontiguousarray(feed[info.name], dtype=buf.dtype)
            if info.name in self._dynamic:
                if not ctx.set_input_shape(info.name, tuple(arr.shape)):
                    lo, _, hi = self._engine.get_tensor_profile_shape(info.name, 0)
                    raise UserError(
                        f"input '{info.name}' shape {list(arr.shape)} is outside the engine's "
                        f"profile ({list(lo)} .. {list(hi)}); rebuild with a wider profile"
                    )
            elif list(arr.shape) != info.shape:
                raise UserError(f"input '{info.name}' must be {info.shape}, got {list(arr.shape)}")
            self._ensure(buf, arr.nbytes)
            np.copyto(buf.host_view(arr.shape), arr)
            staged.append((buf, arr.nbytes))

        cuda_call(rt, rt.cudaEventRecord(ev_start, stream))
        for buf, nbytes in staged:
            cuda_call(rt, rt.cudaMemcpyAsync(buf.device, buf.host, nbytes, h2d, stream))
        cuda_call(rt, rt.cudaEventRecord(ev_h2d, stream))

        out_shapes: list[tuple[int, ...]] = []
        for info in self.outputs:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(info.name))
            if any(d < 0 for d in shape):  # data-dependent (e.g. NonZero): needs an allocator
                raise UserError(
                    f"output '{info.name}' has a data-dependent shape {list(shape)}, which this "
                    "runner does not support; run the model on ONNX Runtime instead"
                )
            buf = self._buffers[info.name]
            self._ensure(buf, int(np.prod(shape, dtype=np.int64)) * buf.dtype.itemsize)
            out_shapes.append(shape)
        for name, buf in self._buffers.items():
            ctx.set_tensor_address(name, buf.device)
        if not ctx.execute_async_v3(native_handle(stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed; see the log")
        cuda_call(rt, rt.cudaEventRecord(ev_compute, stream))

        for info, shape in zip(self.outputs, out_shapes, strict=True):
            buf = self._buffers[info.name]
            nbytes = int(np.prod(shape, dtype=np.int64)) * buf.dtype.itemsize
            cuda_call(rt, rt.cudaMemcpyAsync(buf.host, buf.device, nbytes, d2h, stream))
        cuda_call(rt, rt.cudaEventRecord(ev_d2h, stream))
        cuda_call(rt, rt.cudaStreamSynchronize(stream))

        def elapsed(a: Any, b: Any) -> float:
            return float(cuda_call(rt, rt.cudaEventElapsedTime(a, b)))

        self.last_timings = {
            "h2d_ms": elapsed(ev_start, ev_h2d),
            "compute_ms": elapsed(ev_h2d, ev_compute),
            "d2h_ms": elapsed(ev_compute, ev_d2h),
        }
        # Copy out of the pinned buffers: the next call overwrites them.
        return [
            self._buffers[info.name].host_view(shape).copy()
            for info, shape in zip(self.outputs, out_shapes, strict=True)
        ]
