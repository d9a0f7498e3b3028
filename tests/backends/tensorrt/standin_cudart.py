"""Recording stand-in for `cuda.bindings.runtime` (plumbing only; checked against the real one)."""

from __future__ import annotations

import ctypes
import enum
from types import SimpleNamespace
from typing import Any

import numpy as np


class RecordingCudartStandIn:  # method names and parameter names mirror cuda-python's
    """Stand-in for `cuda.bindings.runtime`: records calls and backs "device memory" with host
    ctypes buffers so copies can be checked. It is not CUDA."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self, devices: int = 1) -> None:
        self._calls: list[tuple[str, tuple]] = []
        self._memory: dict[int, ctypes.Array] = {}
        self._kinds: dict[int, str] = {}  # "device" or "host": freeing with the other is an error
        self._devices = devices

    def _ok(self, *values: Any) -> tuple:
        return (self.cudaError_t.cudaSuccess, *values)

    def cudaGetDeviceCount(self) -> tuple:
        return self._ok(self._devices)

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        return self._ok(SimpleNamespace(name=b"Stand-in GPU\x00\x00\x00", major=9, minor=0))

    def cudaMalloc(self, size: int) -> tuple:
        return self._alloc(size, "device")

    def _alloc(self, size: int, kind: str) -> tuple:
        buf = (ctypes.c_byte * size)()
        ptr = ctypes.addressof(buf)
        self._memory[ptr], self._kinds[ptr] = buf, kind
        self._calls.append(("cudaMalloc", (size,)))
        return self._ok(ptr)

    def _free(self, ptr: int, kind: str) -> tuple:
        if self._kinds.get(ptr) != kind:
            raise RuntimeError(f"stand-in: freeing {ptr:#x} as {kind} memory, it is not that")
        del self._memory[ptr], self._kinds[ptr]
        self._calls.append(("cudaFree", (ptr,)))
        return self._ok()

    def cudaMemcpy(self, dst: int, src: int, count: int, kind: Any) -> tuple:
        ctypes.memmove(int(dst), int(src), count)
        self._calls.append(("cudaMemcpy", (dst, count, kind)))
        return self._ok()

    def cudaFree(self, devPtr: int) -> tuple:
        return self._free(devPtr, "device")

    def cudaMallocHost(self, size: int) -> tuple:
        return self._alloc(size, "host")

    def cudaFreeHost(self, ptr: int) -> tuple:
        return self._free(ptr, "host")

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple:
        self._calls.append(("cudaMemcpyAsync", (kind, stream)))
        ctypes.memmove(int(dst), int(src), count)
        return self._ok()

    def cudaSetDevice(self, device: int) -> tuple:
        return self._ok()

    def cudaStreamCreate(self) -> tuple:
        self._calls.append(("cudaStreamCreate", ()))
        return self._ok(7001)

    def cudaStreamSynchronize(self, stream: Any) -> tuple:
        self._calls.append(("cudaStreamSynchronize", (stream,)))
        return self._ok()

    def cudaStreamDestroy(self, stream: Any) -> tuple:
        self._calls.append(("cudaStreamDestroy", (stream,)))
        return self._ok()

    def cudaEventCreate(self) -> tuple:
        self._calls.append(("cudaEventCreate", ()))
        return self._ok(len(self._calls))

    def cudaEventRecord(self, event: Any, stream: Any) -> tuple:
        self._calls.append(("cudaEventRecord", (event, stream)))
        return self._ok()

    def cudaEventElapsedTime(self, start: Any, end: Any) -> tuple:
        return self._ok(0.25)

    def cudaEventDestroy(self, event: Any) -> tuple:
        self._calls.append(("cudaEventDestroy", (event,)))
        return self._ok()

    def _read(self, ptr: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(self._memory[ptr], dtype=np.float32).reshape(shape).copy()
