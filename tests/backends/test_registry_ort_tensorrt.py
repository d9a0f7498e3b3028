"""Why ONNX Runtime's TensorRT provider cannot load: which libnvinfer is (not) there."""

from __future__ import annotations

from app.backends.registry import _has_library, backend_statuses, ort_tensorrt_library_reason


def _present(*libraries: str):
    """A library probe answering for a machine where exactly `libraries` can be loaded."""
    return lambda name: name in libraries


def test_only_tensorrt_11_says_the_provider_needs_10() -> None:
    reason = ort_tensorrt_library_reason(_present("libnvinfer.so.11"))
    assert reason is not None and "needs TensorRT 10" in reason and "libnvinfer.so.10" in reason
    assert "failed to initialise" not in reason


def test_tensorrt_10_present_and_none_installed() -> None:
    assert ort_tensorrt_library_reason(_present("libnvinfer.so.10", "libnvinfer.so.11")) is None
    reason = ort_tensorrt_library_reason(_present())
    assert reason is not None and reason.startswith("TensorRT not installed")


def test_this_machine_reports_the_provider_unavailable_with_a_reason() -> None:
    if _has_library("libnvinfer.so.10"):
        return  # a TensorRT 10 machine: the provider may really load
    status = {s.name: s for s in backend_statuses()}["ort-tensorrt"]
    assert not status.available and status.reason
    assert (
        status.reason == ort_tensorrt_library_reason(_has_library) or "no TensorRT" in status.reason
    )
