"""Which backends this machine can run, and why not (no GPU, no TensorRT library, ...)."""

from __future__ import annotations

import ctypes
import ctypes.util
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

from app.backends.base import BackendStatus

BACKENDS = ("ort-cpu", "ort-cuda", "ort-tensorrt", "tensorrt", "openvino-cpu")


def _tiny_model(folder: Path) -> Path:
    """A one-node float model used to check that a provider really initialises."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "probe.onnx"
    onnx.save(model, str(path))
    return path


def _provider_really_loads(provider: str) -> bool:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        # Provider load failures are logged by ORT's global logger; we report them in words.
        ort.set_default_logger_severity(4)
        try:
            sess = ort.InferenceSession(
                str(_tiny_model(Path(tmp))), opts, providers=[provider, "CPUExecutionProvider"]
            )
        except Exception:  # any failure to create means the provider is unusable here
            return False
        finally:
            ort.set_default_logger_severity(2)
        return sess.get_providers()[0] == provider


def _has_library(*names: str) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _cuda_reason() -> str:
    if not _has_library("libcuda.so.1", "libcuda.so"):
        return "no NVIDIA GPU driver found (libcuda): this machine has no usable NVIDIA GPU"
    if not _has_library("libcudart.so.13", "libcudart.so.12"):
        return "CUDA runtime libraries not found (install the CUDA toolkit or nvidia-*-cu13 wheels)"
    if not _has_library("libcudnn.so.9"):
        return "cuDNN 9 not found (install nvidia-cudnn-cu13 or cuDNN 9)"
    return "the CUDA provider failed to initialise (driver/CUDA version mismatch?)"


def ort_tensorrt_library_reason(has_library: Callable[..., bool]) -> str | None:
    """Why ONNX Runtime's TensorRT provider cannot load for want of libnvinfer; None when present.

    onnxruntime-gpu 1.31's provider library links libnvinfer.so.10 by that name, so TensorRT 11
    (libnvinfer.so.11) does not satisfy it: say so rather than "failed to initialise".
    """
    if has_library("libnvinfer.so.10"):
        return None
    if has_library("libnvinfer.so.11"):
        return (
            "ONNX Runtime's TensorRT provider needs TensorRT 10 (it links libnvinfer.so.10); only "
            "TensorRT 11 is installed: install TensorRT 10 beside it (pip install tensorrt-cu12 "
            "--extra-index-url https://pypi.nvidia.com) or use the native 'tensorrt' backend"
        )
    return (
        "TensorRT not installed (libnvinfer.so.10 not found); ONNX Runtime would run on "
        "CUDA, or else the CPU, instead"
    )


_PROBE_LOCK = threading.Lock()


def backend_statuses() -> tuple[BackendStatus, ...]:
    """Status of every backend on this machine (probed once per process, one thread at a time:
    the probe turns ONNX Runtime's global log down while a provider may fail to load)."""
    with _PROBE_LOCK:
        return _backend_statuses()


@cache
def _backend_statuses() -> tuple[BackendStatus, ...]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    version = ort.__version__
    out = [BackendStatus("ort-cpu", True, "", {"onnxruntime": version})]
    if "CUDAExecutionProvider" not in available:
        out.append(
            BackendStatus(
                "ort-cuda",
                False,
                f"onnxruntime {version} has no CUDA provider (install onnxruntime-gpu)",
            )
        )
    elif _provider_really_loads("CUDAExecutionProvider"):
        out.append(BackendStatus("ort-cuda", True, "", {"onnxruntime": version}))
    else:
        out.append(BackendStatus("ort-cuda", False, _cuda_reason()))
    if "TensorrtExecutionProvider" not in available:
        out.append(
            BackendStatus("ort-tensorrt", False, "this onnxruntime build has no TensorRT provider")
        )
    elif (reason := ort_tensorrt_library_reason(_has_library)) is not None:
        out.append(BackendStatus("ort-tensorrt", False, reason))
    elif _provider_really_loads("TensorrtExecutionProvider"):
        out.append(BackendStatus("ort-tensorrt", True, "", {"onnxruntime": version}))
    else:
        out.append(
            BackendStatus(
                "ort-tensorrt",
                False,
                "the TensorRT provider failed to initialise "
                "(no GPU, or TensorRT/CUDA version mismatch)",
            )
        )
    out.append(_native_tensorrt_status())
    out.append(_openvino_status())
    return tuple(out)


def _openvino_status() -> BackendStatus:
    try:
        from app.backends.openvino_cpu import cpu_name
        from app.core.openvino_session import core, import_openvino

        ov = import_openvino()
        if "CPU" not in core().available_devices:
            return BackendStatus("openvino-cpu", False, "OpenVINO finds no CPU device plugin")
        return BackendStatus(
            "openvino-cpu", True, "", {"openvino": ov.get_version(), "cpu": cpu_name()}
        )
    except ImportError:
        return BackendStatus(
            "openvino-cpu", False, "OpenVINO is not installed (pip install openvino)"
        )
    except RuntimeError as exc:  # a broken plugin install
        return BackendStatus("openvino-cpu", False, f"OpenVINO failed to start ({exc})")


def _native_tensorrt_status() -> BackendStatus:
    try:
        from app.backends.tensorrt.status import tensorrt_status
    except ImportError:
        return BackendStatus("tensorrt", False, "TensorRT backend module missing from this install")
    return tensorrt_status()


def status_of(name: str) -> BackendStatus:
    for status in backend_statuses():
        if status.name == name:
            return status
    return BackendStatus(
        name, False, f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}"
    )
