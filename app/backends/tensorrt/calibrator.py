"""TensorRT 10 INT8 calibrator over any iterable of input batches (after Polygraphy's Calibrator).

Calibrator INT8 is deprecated since TensorRT 10.1 and removed in 11 (`plan_build` refuses it
there). The class is defined inside `make_calibrator` because its base class comes from the
`tensorrt` module, which is only imported when a build actually runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.tensorrt.deps import cuda_call, import_cudart
from app.core.atomic import write_bytes
from app.core.errors import CancelToken, UserError

Batch = dict[str, np.ndarray]

_BASES = {"entropy2": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}


def make_calibrator(
    trt: Any,
    batches: Iterable[Batch],
    cache_path: str | os.PathLike[str] | None,
    algo: str = "entropy2",
    *,
    cudart: Any = None,
    cancel: CancelToken | None = None,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Build a calibrator object for `config.int8_calibrator`.

    batches: dicts of input name -> float32 array with the batch dimension included; every batch
    must have the same shapes as the first (device buffers are allocated once).
    cache_path: TensorRT's calibration cache; read to skip calibration, written atomically after.
    progress: called with the number of batches served so far.
    After the build, look at `calibrator.error`: an exception raised inside a TensorRT callback
    cannot cross the C++ boundary, so it is kept there and the builder re-raises it.
    """
    if algo not in _BASES:
        raise UserError(f"unknown calibrator '{algo}'; choose one of {', '.join(_BASES)}")
    base = getattr(trt, _BASES[algo])
    rt = cudart if cudart is not None else import_cudart()
    cache = Path(cache_path) if cache_path is not None else None

    class Calibrator(base):  # type: ignore[misc, valid-type]
        """Feeds batches to TensorRT through device buffers allocated on the first batch."""

        def __init__(self) -> None:
            base.__init__(self)  # pybind11 trampoline: without this the object is not set up
            self.algo = algo
            self.error: BaseException | None = None
            self.batches_served = 0
            self._source = batches
            self._iter: Iterator[Batch] = iter(batches)
            self._first: Batch | None = None
            self._device: dict[str, int] = {}
            self._nbytes: dict[str, int] = {}
            self._shapes: dict[str, tuple[int, ...]] = {}

        # batches -------------------------------------------------------------------------
        def _next(self) -> Batch | None:
            if self._first is not None:
                first, self._first = self._first, None
                return first
            return next(self._iter, None)

        def get_batch_size(self) -> int:
            # Explicit-batch networks: N is part of the input shape; report the first batch's N.
            if not self._shapes and self._first is None:
                self._first = next(self._iter, None)
            if self._shapes:
                shape = next(iter(self._shapes.values()))
            elif self._first:
                shape = np.shape(next(iter(self._first.values())))
            else:
                return 1
            return int(shape[0]) if shape else 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                if cancel is not None and cancel.cancelled:
                    return None  # TensorRT stops calibrating; the builder raises Cancelled
                batch = self._next()
                if batch is None:
                    self.free()
                    return None
                pointers = [self._upload(name, batch) for name in names]
                self.batches_served += 1
                if progress is not None:
                    progress(self.batches_served)
                return pointers
            except BaseException as exc:
                self.error = exc
                self.free()
                return None

        def _upload(self, name: str, batch: Batch) -> int:
            if name not in batch:
                have = ", ".join(sorted(batch)) or "nothing"
                raise UserError(f"calibration batch has no input '{name}' (has {have})")
            arr = np.ascontiguousarray(batch[name], dtype=np.float32)
            if name not in self._device:
                self._device[name] = int(cuda_call(rt, rt.cudaMalloc(arr.nbytes)))
                self._nbytes[name] = arr.nbytes
                self._shapes[name] = tuple(arr.shape)
            elif tuple(arr.shape) != self._shapes[name]:
                raise UserError(
                    f"calibration batch for '{name}' has shape {list(arr.shape)}, "
                    f"the first batch had {list(self._shapes[name])}; use one shape throughout"
                )
            kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            cuda_call(rt, rt.cudaMemcpy(self._device[name], arr.ctypes.data, arr.nbytes, kind))
            return self._device[name]

        def rewind(self) -> None:
            """Start again from the first batch (when `batches` is re-iterable, e.g. a list)."""
            self._iter = iter(self._source)
            self._first = None
            self.batches_served = 0

        def free(self) -> None:
            """Release device buffers; safe to call more than once."""
            while self._device:
                _, ptr = self._device.popitem()
                cuda_call(rt, rt.cudaFree(ptr))

        # cache ---------------------------------------------------------------------------
        def read_calibration_cache(self) -> bytes | None:
            if cache is not None and cache.is_file() and cache.stat().st_size > 0:
                return cache.read_bytes()
            return None  # None makes TensorRT calibrate

        def write_calibration_cache(self, data: Any) -> None:
            if cache is None:
                return
            try:
                write_bytes(cache, bytes(data))  # arrives as a memoryview
            except BaseException as exc:
                self.error = exc

        def __del__(self) -> None:
            try:
                self.free()
            except Exception:  # interpreter shutdown: cudart may already be gone
                pass

    return Calibrator()
