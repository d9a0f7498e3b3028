"""Build a TensorRT engine from an ONNX file with the flags `plan_build` chose (TensorRT 10 and 11).

Thin on purpose: every decision about flags lives in settings.py, where it is tested; this module
only drives the API (shared/docs/TENSORRT.md sections 1, 2a, 4, 5) and writes the engine and its
record atomically.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.tensorrt.calibrator import make_calibrator
from app.backends.tensorrt.deps import gpu_identity, import_cudart, import_tensorrt, parse_trt_major
from app.backends.tensorrt.engine_header import EngineRecord, sha256_file, write_engine
from app.backends.tensorrt.settings import BuildSettings, plan_build, validate_profiles
from app.core.atomic import write_bytes
from app.core.errors import Cancelled, CancelToken, UserError

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


def make_logger(trt: Any) -> Any:
    """A trt.ILogger that forwards to `logging` and keeps the errors for the UserError message."""

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(str(msg))
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.WARNING:
                log.warning("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return CapturingLogger()


def make_progress_monitor(trt: Any, progress: Progress | None, cancel: CancelToken | None) -> Any:
    """A trt.IProgressMonitor (TensorRT >= 10.0) reporting top-level phase progress, cancellable.

    TensorRT calls it from several threads, hence the lock. Returning False from step_complete
    cancels the build; so does an exception there (pyCore.cpp), which we keep in `error`.
    """

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.error: BaseException | None = None
            self._lock = threading.Lock()
            self._phases: dict[str, tuple[str | None, int]] = {}
            self._top_fraction = 0.0

        def _report(self, message: str) -> None:
            if progress is not None:
                progress(self._top_fraction, message)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._phases[phase_name] = (parent_phase, max(int(num_steps), 1))
                if parent_phase is None:
                    self._top_fraction = 0.0
            self._safe_report(phase_name)

        def step_complete(self, phase_name: str, step: int) -> bool:
            if cancel is not None and cancel.cancelled:
                return False
            with self._lock:
                parent, steps = self._phases.get(phase_name, (None, 1))
                if parent is None:
                    self._top_fraction = min(1.0, (int(step) + 1) / steps)
            return self._safe_report(phase_name)

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                parent, _ = self._phases.pop(phase_name, (None, 1))
                if parent is None:
                    self._top_fraction = 1.0
            self._safe_report(phase_name)

        def _safe_report(self, message: str) -> bool:
            try:
                self._report(message)
                return True
            except BaseException as exc:
                self.error = exc
                return False

    return Monitor()


def _add_profiles(
    trt: Any, builder: Any, network: Any, config: Any, settings: BuildSettings
) -> Any:
    """One optimisation profile covering every dynamic input; None when all inputs are fixed."""
    profiles = validate_profiles(settings.profiles)
    inputs = {
        t.name: tuple(int(d) for d in t.shape)
        for t in (network.get_input(i) for i in range(network.num_inputs))
    }
    unknown = sorted(set(profiles) - set(inputs))
    if unknown:
        raise UserError(
            f"shape profile names unknown input(s) {', '.join(unknown)}; "
            f"the model's inputs are {', '.join(inputs)}"
        )
    dynamic = {name: shape for name, shape in inputs.items() if any(d < 0 for d in shape)}
    for name, shape in dynamic.items():
        if name not in profiles:
            raise UserError(
                f"input '{name}' has a dynamic shape {list(shape)}; give min/opt/max shapes for it"
            )
    for name, (mn, _, mx) in profiles.items():
        shape = inputs[name]
        if len(shape) != len(mn):
            raise UserError(f"profile for '{name}' has rank {len(mn)}, the input has {len(shape)}")
        for k, d in enumerate(shape):
            if d >= 0 and not (mn[k] == mx[k] == d):
                raise UserError(
                    f"input '{name}' is fixed at {d} in dimension {k}; its profile must be too"
                )
    if not dynamic:
        return None
    profile = builder.create_optimization_profile()
    for name in dynamic:
        mn, opt, mx = profiles[name]
        profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(profile)
    return profile


def _load_timing_cache(config: Any, path: Path | None) -> None:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    try:
        cache = config.create_timing_cache(data)
        ok = cache is not None and config.set_timing_cache(cache, False)
    except Exception as exc:  # a cache from another TensorRT version: start afresh, not fail
        log.warning("timing cache %s not usable (%s); starting an empty one", path, exc)
        ok = False
    if not ok and data:
        config.set_timing_cache(config.create_timing_cache(b""), False)


def build_engine(
    onnx_path: str | os.PathLike[str],
    settings: BuildSettings,
    out_path: str | os.PathLike[str],
    *,
    batches: Iterable[dict[str, np.ndarray]] | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    calibration_cache: str | os.PathLike[str] | None = None,
    model_sha256: str | None = None,
    trt: Any = None,
    cudart: Any = None,
) -> dict[str, Any]:
    """Build `onnx_path` into `out_path` (+ `<out>.json` record); return a summary dict.

    batches: calibration input batches, required only when the plan uses a calibrator.
    progress(fraction, message): called from TensorRT's threads during the build.
    trt / cudart: the modules, for tests; imported lazily when None.
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise UserError(f"ONNX model not found: {onnx_path}")
    trt = trt if trt is not None else import_tensorrt()
    cudart = cudart if cudart is not None else import_cudart()
    plan = plan_build(settings, parse_trt_major(trt.__version__))
    if plan.use_calibrator and batches is None:
        raise UserError("calibrator INT8 needs calibration images; run Calibrate first")
    report = progress or (lambda _f, _m: None)
    if cancel is not None:
        cancel.check()

    report(0.0, "parsing ONNX")
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(plan.network_flag_bits(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UserError(
            f"TensorRT cannot parse {onnx_path.name}: " + ("; ".join(errors) or "no details given")
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.opt_level
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = _add_profiles(trt, builder, network, config, settings)

    timing_path = Path(settings.timing_cache_path) if settings.timing_cache_path else None
    if timing_path is not None:
        _load_timing_cache(config, timing_path)

    calibrator = None
    if plan.use_calibrator:
        calibrator = make_calibrator(
            trt,
            batches or [],
            calibration_cache,
            plan.calibrator or "entropy2",
            cudart=cudart,
            cancel=cancel,
        )
        config.int8_calibrator = calibrator  # removed in 11; plan_build never gets here on 11
        if profile is not None:
            config.set_calibration_profile(profile)

    monitor = None
    if hasattr(trt, "IProgressMonitor") and (progress is not None or cancel is not None):
        monitor = make_progress_monitor(trt, progress, cancel)
        config.progress_monitor = monitor  # keep `monitor` referenced until the build ends

    started = time.perf_counter()
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    seconds = time.perf_counter() - started
    for holder in (calibrator, monitor):
        if holder is not None and holder.error is not None:
            raise holder.error
    if cancel is not None and cancel.cancelled:
        raise Cancelled()
    if serialized is None:
        detail = "; ".join(logger.errors[-3:]) or "no error was logged"
        raise UserError(f"TensorRT could not build the engine: {detail}")

    if timing_path is not None:
        write_bytes(timing_path, bytes(config.get_timing_cache().serialize()))
    gpu_name, capability = gpu_identity(cudart, 0)
    record = write_engine(
        out_path,
        memoryview(serialized),
        EngineRecord(
            trt_version=str(trt.__version__),
            gpu_name=gpu_name,
            compute_capability=capability,
            model_sha256=model_sha256 or sha256_file(onnx_path),
            settings=settings.identity(),
            build_seconds=round(seconds, 3),
        ),
    )
    report(1.0, "engine written")
    return {
        "engine": str(out_path),
        "record": asdict(record),
        "plan": asdict(plan),
        "build_seconds": round(seconds, 3),
        "timing_cache": str(timing_path) if timing_path else None,
        "calibration_batches": calibrator.batches_served if calibrator is not None else 0,
    }
