"""Lazy imports of TensorRT and cuda-python, plus the small CUDA helpers every module here shares.

Nothing in this package imports `tensorrt` or `cuda` at module level: the app must start, and its
tests must run, on machines where neither can be installed (see shared/docs/GPU.md).
"""

from __future__ import annotations

from typing import Any

from app.core.errors import UserError

TRT_INSTALL_HINT = (
    "TensorRT not installed: on a machine with an NVIDIA GPU, pip install tensorrt-cu12 "
    "--extra-index-url https://pypi.nvidia.com (TensorRT 10; tensorrt-cu13 for 11)"
)
CUDA_PYTHON_HINT = (
    "cuda-python not installed: pip install cuda-python (needed to move data to the GPU)"
)
SUPPORTED_MAJORS = (10, 11)


def import_tensorrt() -> Any:
    """Import `tensorrt`, or raise UserError saying how to install it."""
    try:
        import tensorrt as trt  # lazy: the app runs without it
    except ImportError as exc:
        raise UserError(TRT_INSTALL_HINT) from exc
    except Exception as exc:  # the PyPI stub and missing libnvinfer fail with other errors
        raise UserError(
            f"TensorRT failed to load ({type(exc).__name__}: {exc}); {TRT_INSTALL_HINT}"
        ) from exc
    return trt


def import_cudart() -> Any:
    """Import the CUDA runtime bindings from cuda-python, new layout first, then the old one."""
    try:
        # cuda-bindings >= 12.6.1 (and the only layout in 13.x)
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            # cuda-python < 12.6.1; removed in cuda-bindings 13.0.0
            from cuda import cudart
        except ImportError as exc:
            raise UserError(CUDA_PYTHON_HINT) from exc
    return cudart


def parse_trt_major(version: str) -> int:
    """Major number of a TensorRT version string such as "10.14.1.48"; UserError if unreadable."""
    head = str(version).split(".", 1)[0]
    if not head.isdigit():
        raise UserError(f"cannot read the TensorRT version {version!r}; reinstall TensorRT")
    return int(head)


def check_supported_major(major: int) -> None:
    """Raise UserError for TensorRT majors this app was not written for."""
    if major < SUPPORTED_MAJORS[0]:
        raise UserError(
            f"TensorRT {major} is too old: INT8 Studio needs TensorRT 10 or 11 "
            "(the name-based tensor API and the current builder)"
        )


def cuda_call(cudart: Any, result: Any) -> Any:
    """Unwrap a cuda-python result `(err, *values)`; RuntimeError when err is not success.

    Returns None for `(err,)`, the value for `(err, v)`, and a tuple for more values. A CUDA
    error here is an internal or driver problem, not something the user can fix from the app.
    """
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        raise RuntimeError(f"CUDA call failed: {name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def native_handle(obj: Any) -> int:
    """Plain integer handle of a cuda-python object (stream, event), as TensorRT wants it.

    cuda-bindings 12.9.1/13.0 deprecate `int(obj)` in favour of `get_cuda_native_handle`; use the
    new helper where it exists so no DeprecationWarning reaches the user.
    """
    if isinstance(obj, int):
        return obj
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(obj)
    return int(get_cuda_native_handle(obj))


def gpu_identity(cudart: Any, device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of `device`, from cudaGetDeviceProperties."""
    props = cuda_call(cudart, cudart.cudaGetDeviceProperties(device))
    name = props.name
    # cuda-python gives the fixed-size C char array as bytes padded with NULs [unverified detail]
    if isinstance(name, bytes | bytearray):
        name = bytes(name).split(b"\x00", 1)[0].decode("utf-8", "replace")
    return str(name).strip(), f"{int(props.major)}.{int(props.minor)}"
