"""Make the runner for a backend name ("ort-cpu", "ort-cuda", "ort-tensorrt", "tensorrt",
"openvino-cpu")."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from app.backends.base import Runner
from app.backends.registry import BACKENDS, status_of
from app.core.errors import UserError

CPU_BACKENDS = ("ort-cpu", "openvino-cpu")

log = logging.getLogger(__name__)


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
    tf32 = bool(options.pop("tf32", False))  # an ONNX Runtime CUDA choice; TensorRT has its own
    if backend == "tensorrt":
        status = status_of("tensorrt")
        if not status.available:
            raise UserError(f"native TensorRT backend unavailable: {status.reason}")
        from app.backends.tensorrt.runtime import TensorRTRunner

        return TensorRTRunner(model_path, **options)
    if backend == "openvino-cpu":
        status = status_of(backend)
        if not status.available:
            raise UserError(f"OpenVINO backend unavailable: {status.reason}")
        from app.backends.openvino_cpu import OpenVinoRunner

        return OpenVinoRunner(model_path, strict=strict, threads=threads, **options)
    from app.backends.onnxrt import OrtRunner

    device = backend.removeprefix("ort-")
    if device == "cuda":
        options.setdefault("io_binding", True)
        # FP32 means FP32: ONNX Runtime's default TF32 convolutions moved YOLOX scores by up to
        # 0.035 against the CPU on an H100 (2e-5 with TF32 off), which would blur every FP32 vs
        # FP16/INT8 comparison. TF32 stays available (`tf32`, the CLI's --tf32): ~0.15 ms faster.
        # Not for FP16 graphs: there `use_tf32=0` made cuDNN refuse its tensor-core plans and
        # YOLOX-Nano FP16 took 1.55 instead of 1.0 ms per frame (H100, ORT 1.31).
        provider = dict(options.pop("provider_options", None) or {})
        if not _fp16_graph(model_path):
            provider.setdefault("use_tf32", "1" if tf32 else "0")
        options["provider_options"] = provider
    if device == "tensorrt":
        # Every provider session caches its engines (the provider's default is to build anew
        # each time: minutes for a large model), in the folders `build` fills for the graph:
        # its workspace's, else the app's cache (`ort_trt_options.runner_trt_options`).
        from app.backends.ort_trt_options import runner_trt_options, workspace_of

        provider = dict(options.pop("provider_options", None) or {})
        root = options.pop("engine_cache_root", None) or workspace_of(model_path)
        if "trt_engine_cache_path" not in provider:
            try:
                cached = runner_trt_options(model_path, root or default_cache_dir())
            except (OSError, ValueError) as exc:  # unreadable: the runner says so when it opens
                log.debug("%s: no engine cache options (%s)", model_path, exc)
                cached = {}
            provider = {**cached, **provider}
        options["provider_options"] = provider
    return OrtRunner(
        model_path,
        device,
        strict=strict,
        threads=threads,
        provider_options=options.pop("provider_options", None),
        **options,
    )


def decode_threads_for(backend: str) -> int | None:
    """Video decoding threads to ask FFmpeg for when frames feed `backend`: one when inference
    runs on the CPU (it already has every core; measured 1.14 instead of 1.51 CPU-ms per
    768x432 frame, as fast in wall time), FFmpeg's own choice otherwise."""
    return 1 if backend in CPU_BACKENDS else None


def _fp16_graph(model_path: str | Path) -> bool:
    from app.core.quant.graph_rules import computes_in_fp16

    try:
        return computes_in_fp16(str(model_path))
    except (OSError, ValueError, RuntimeError):  # unreadable: the runner reports it when it opens
        return False


def runner_for_pipeline(
    backend: str,
    model_path: str | Path,
    spec: Any,
    *,
    cache_dir: Path | None = None,
    strict: bool = False,
    threads: int | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[Runner, bool]:
    """(runner, fused) for frame pipelines: on ONNX Runtime the model is wrapped so uint8
    frames go in and reduced scores come out (graph_fusion), and on CUDA run with I/O binding
    and, for fixed input sizes, CUDA graphs. Measured: YOLOX-Nano FP16 on an H100 0.99-1.01 ms
    instead of 1.23 ms per frame, numpy in and out; on 2 CPU cores preprocessing 0.47 instead
    of 0.72 ms, postprocessing 0.30 instead of 0.55 ms, inference no slower."""
    options = dict(options or {})
    source = model_path
    fused = backend in ("ort-cpu", "ort-cuda", "ort-tensorrt", "openvino-cpu")
    if fused:
        from app.core.frames.graph_fusion import fused_model_path

        try:
            model_path = fused_model_path(
                Path(model_path), spec, cache_dir or default_cache_dir() / "fused"
            )
        except Exception as exc:  # any failure of an optional rewrite
            # The fusion only saves copies; a graph it does not understand (or an unwritable
            # cache) still runs the same model, unfused. Logged, so it is not silent.
            fused = False
            log.warning("%s: running without fused I/O (%s)", model_path, exc)
        if fused and backend == "ort-cuda" and not spec.preprocess.short_side:
            options.setdefault("cuda_graph", True)
    if backend == "ort-tensorrt":  # the fused copy's engines stay with the variant's workspace
        from app.backends.ort_trt_options import workspace_of

        options.setdefault("engine_cache_root", workspace_of(source))
    runner = make_runner(backend, model_path, strict=strict, threads=threads, options=options)
    if fused:
        runner.source_path = str(source)  # messages name the user's file, not the cached copy
    return runner, fused


def default_cache_dir() -> Path:
    """Where derived graphs go; INT8_STUDIO_CACHE overrides (the tests use a temporary one)."""
    override = os.environ.get("INT8_STUDIO_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("int8-studio", appauthor=False))
