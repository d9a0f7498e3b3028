"""Can native TensorRT run here? One `BackendStatus` with a one-line reason a user can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.backends.base import BackendStatus
from app.backends.tensorrt.deps import (
    CUDA_PYTHON_HINT,
    TRT_INSTALL_HINT,
    cuda_call,
    gpu_identity,
    import_cudart,
    import_tensorrt,
    parse_trt_major,
)
from app.core.errors import UserError

NAME = "tensorrt"


def tensorrt_status(
    *,
    load_tensorrt: Callable[[], Any] = import_tensorrt,
    load_cudart: Callable[[], Any] = import_cudart,
) -> BackendStatus:
    """Report whether TensorRT, cuda-python and a CUDA device are all present.

    `load_tensorrt` / `load_cudart` exist so tests can exercise each failure branch; the app
    calls this with no arguments.
    """
    try:
        trt = load_tensorrt()
    except UserError as exc:
        return BackendStatus(NAME, False, str(exc))
    except ImportError:
        return BackendStatus(NAME, False, TRT_INSTALL_HINT)
    except Exception as exc:  # defensive: a broken install must not crash the status bar
        return BackendStatus(NAME, False, f"TensorRT failed to load: {exc}; {TRT_INSTALL_HINT}")

    version = getattr(trt, "__version__", None)
    # The PyPI placeholder and the lean-runtime wheels import but cannot build engines.
    if version is None or not hasattr(trt, "Builder"):
        return BackendStatus(
            NAME,
            False,
            f"the installed 'tensorrt' package has no builder (a stub or lean runtime); "
            f"{TRT_INSTALL_HINT}",
        )
    try:
        major = parse_trt_major(version)
    except UserError as exc:
        return BackendStatus(NAME, False, str(exc))
    details: dict[str, Any] = {"trt_version": str(version), "trt_major": major}
    if major < 10:
        return BackendStatus(
            NAME,
            False,
            f"TensorRT {version} is too old: INT8 Studio needs TensorRT 10 or 11",
            details,
        )
    details["calibrator_int8"] = major == 10  # removed in 11 (weak typing gone)

    try:
        cudart = load_cudart()
    except UserError as exc:
        return BackendStatus(NAME, False, str(exc), details)
    except ImportError:
        return BackendStatus(NAME, False, CUDA_PYTHON_HINT, details)

    try:
        count = cuda_call(cudart, cudart.cudaGetDeviceCount())
    except Exception as exc:  # no driver gives cudaErrorNoDevice / InsufficientDriver here
        return BackendStatus(NAME, False, f"no CUDA device: {exc}", details)
    if not count:
        return BackendStatus(NAME, False, "no CUDA device: TensorRT needs an NVIDIA GPU", details)
    details["cuda_devices"] = int(count)
    try:
        gpu_name, capability = gpu_identity(cudart, 0)
        details["gpu"] = gpu_name
        details["compute_capability"] = capability
    except Exception as exc:  # the name is for display; its absence is not fatal
        details["gpu_error"] = str(exc)
    return BackendStatus(NAME, True, "", details)
