"""Make the runner for a backend name ("ort-cpu", "ort-cuda", "ort-tensorrt", "tensorrt")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.backends.base import Runner
from app.backends.registry import BACKENDS, status_of
from app.core.errors import UserError


def make_runner(
    backend: str,
    model_path: str | Path,
    *,
    strict: bool = False,
    threads: int | None = None,
    options: dict[str, Any] | None = None,
) -> Runner:
    """A not-yet-opened runner. Unavailable backends raise `UserError` saying why, except the
    ONNX Runtime GPU ones without `strict`, which open and report their CPU fallback."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    options = dict(options or {})
    if backend == "tensorrt":
        status = status_of("tensorrt")
        if not status.available:
            raise UserError(f"native TensorRT backend unavailable: {status.reason}")
        from app.backends.tensorrt.runtime import TensorRTRunner

        return TensorRTRunner(model_path, **options)
    from app.backends.onnxrt import OrtRunner

    device = backend.removeprefix("ort-")
    if device == "cuda":
        options.setdefault("io_binding", True)
    return OrtRunner(
        model_path,
        device,
        strict=strict,
        threads=threads,
        provider_options=options.pop("provider_options", None),
        **options,
    )
