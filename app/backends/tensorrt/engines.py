"""TensorRT engines of a workspace's variants: which graph and settings, where, reuse or rebuild.

An engine lives in `<workspace>/engines/` under a name made of the variant, the TensorRT version,
the GPU and a key over everything that changes the plan (the graph's sha256, the settings, the
calibration), with its record beside it (engine_header.py). A file with that name whose record
checks out is reused; one that does not (damaged, edited, or copied from another model or
machine) is deleted and rebuilt. A build writes nothing until TensorRT has finished, so a
cancelled build leaves no engine and no record behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.tensorrt.builder import build_engine
from app.backends.tensorrt.engine_header import (
    EngineExpectation,
    check_engine,
    sha256_file,
    side_path,
)
from app.backends.tensorrt.settings import BuildSettings, ProfileShapes, plan_build
from app.core.errors import CancelToken, UserError
from app.core.model.workspace import Workspace, cache_key, safe_component
from app.core.quant.calibration import CalibrationReader, latest_calibration
from app.core.safe_json import load_json

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
VARIANTS = ("fp32", "fp16", "int8")
INT8_SOURCES = ("auto", "qdq", "calibrator")
QDQ_VARIANT = "int8-trt"  # the Q/DQ graph quantize makes for TensorRT (symmetric, fusable)
ENGINE_KEY_VERSION = 1


@dataclass(frozen=True)
class EngineOptions:
    """What the user chose for every variant's engine."""

    workspace_mb: int = 1024
    profiles: dict[str, ProfileShapes] = field(default_factory=dict)
    version_compatible: bool = False
    timing_cache: str | None = None
    int8_source: str = "auto"
    calibrator: str = "entropy2"
    opt_level: int = 3


@dataclass(frozen=True)
class EngineJob:
    """One variant's build: the ONNX graph, the settings, and the calibration it needs."""

    variant: str
    graph: Path
    graph_label: str
    settings: BuildSettings
    calibration: Path | None = None

    @property
    def route(self) -> str:
        if self.settings.precision != "int8":
            return "strongly typed" if self.settings.graph != "fp32" else "default"
        return "calibrator" if self.settings.int8_source == "calibrator" else "strongly typed Q/DQ"


def _graph(ws: Workspace, name: str) -> Path | None:
    return ws.variant_path(name) if ws.valid_variant(name) else None


def default_profiles(ws: Workspace, given: dict[str, ProfileShapes]) -> dict[str, ProfileShapes]:
    """`given`, plus batch 1 (min = opt = max) for a model input whose only dynamic dimension is
    the batch and which the user gave no shapes for: what the app runs it with everywhere else."""
    spec = ws.spec()
    profiles = dict(given)
    shape = list(spec.input_shape)
    fixed = [d for d in shape[1:] if isinstance(d, int) and d > 0]
    dynamic_batch = bool(shape) and not (isinstance(shape[0], int) and shape[0] > 0)
    if spec.input_name not in profiles and dynamic_batch and len(fixed) == len(shape) - 1:
        one = (1, *fixed)
        profiles[spec.input_name] = (one, one, one)
    return profiles


def plan_job(ws: Workspace, variant: str, options: EngineOptions, trt_major: int) -> EngineJob:
    """Which graph and BuildSettings build `variant` on this TensorRT generation; UserError if
    it cannot be built (the message says which command makes the missing graph)."""
    if variant not in VARIANTS:
        raise UserError(f"unknown variant '{variant}'; choose from {', '.join(VARIANTS)}")
    if options.int8_source not in INT8_SOURCES:
        raise UserError(f"unknown INT8 source '{options.int8_source}'; choose qdq or calibrator")
    base = BuildSettings(
        workspace_bytes=int(options.workspace_mb) << 20,
        opt_level=options.opt_level,
        timing_cache_path=options.timing_cache,
        profiles=default_profiles(ws, options.profiles),
        version_compatible=options.version_compatible,
        calibrator=options.calibrator,
    )
    fp32 = _graph(ws, "fp32") or Path(ws.spec().path)
    calibration = None
    if variant == "fp32":
        job = EngineJob(variant, fp32, "fp32 graph", base)
    elif variant == "fp16":
        fp16 = _graph(ws, "fp16")
        if fp16 is None and trt_major >= 11:
            raise UserError(
                f"TensorRT 11 builds FP16 only from the FP16 graph, and {ws.root} has none; run "
                f"`int8-studio quantize --workspace {ws.root} --precision fp16` first"
            )
        if fp16 is not None:
            job = EngineJob(
                variant, fp16, "fp16 graph", replace(base, precision="fp16", graph="fp16")
            )
        else:  # TensorRT 10: the FP16 builder flag on the FP32 graph (weak typing)
            job = EngineJob(
                variant, fp32, "fp32 graph + FP16 flag", replace(base, precision="fp16")
            )
    else:
        qdq = _graph(ws, QDQ_VARIANT)
        source = options.int8_source
        if source == "auto":
            source = "qdq" if qdq is not None or trt_major >= 11 else "calibrator"
        if source == "qdq":
            if qdq is None:
                raise UserError(
                    f"{ws.root} has no INT8 Q/DQ graph for TensorRT; run `int8-studio quantize "
                    f"--workspace {ws.root} --precision int8 --target tensorrt`"
                    + (" or use --int8-source calibrator" if trt_major == 10 else "")
                )
            settings = replace(base, precision="int8", graph="qdq", int8_source="qdq")
            job = EngineJob(variant, qdq, "int8 Q/DQ graph", settings)
        else:
            settings = replace(base, precision="int8", graph="fp32", int8_source="calibrator")
            if trt_major < 11:  # on 11 plan_build below says calibrators are gone
                calibration = latest_calibration(ws)
            job = EngineJob(variant, fp32, "fp32 graph + calibrator", settings, calibration)
    plan_build(job.settings, trt_major)  # refuses impossible combinations with the reason
    return job


def engine_path(ws: Workspace, job: EngineJob, trt_version: str, gpu: str, capability: str) -> Path:
    """Where this job's engine lives for this TensorRT version and GPU (its name is its key)."""
    key = cache_key(
        ENGINE_KEY_VERSION,
        job.variant,
        trt_version,
        gpu,
        capability,
        sha256_file(job.graph),
        job.settings.identity(),
        job.calibration.name if job.calibration else None,
    )
    name = f"{job.variant}-trt{trt_version}-{safe_component(gpu)}-{key[:12]}.engine"
    return ws.path("engines", name)


def calibration_cache_path(ws: Workspace, job: EngineJob, trt_version: str) -> Path | None:
    """TensorRT's own calibration cache for a calibrator build: written by the first build,
    read by later ones (TensorRT then skips calibrating); keyed like the calibration."""
    if job.calibration is None:
        return None
    major = trt_version.split(".", 1)[0]
    name = f"calib-{job.calibration.name}-{job.settings.calibrator}-trt{major}.cache"
    return ws.path("engines", name)


def calibration_batches(ws: Workspace, job: EngineJob, cancel: CancelToken | None) -> Iterator:
    """The calibration images of the workspace's calibration, preprocessed like the model's
    input, batched like the engine's input (its static batch, or the profile's opt batch)."""
    spec = ws.spec()
    assert job.calibration is not None
    meta = load_json(job.calibration / "meta.json")
    files = [Path(p) for p in meta.get("images_used", [])]
    if not files:
        raise UserError(f"{job.calibration}: the calibration lists no images; run calibrate again")
    batch = spec.input_shape[0] if isinstance(spec.input_shape[0], int) else 1
    if spec.input_name in job.settings.profiles:
        batch = job.settings.profiles[spec.input_name][1][0]
    reader = CalibrationReader(spec, files, batch=max(int(batch), 1), cancel=cancel)
    for tensor in reader:
        if tensor.shape[0] == batch:  # TensorRT wants every batch the same shape
            yield {spec.input_name: np.ascontiguousarray(tensor, dtype=np.float32)}


def ensure_engine(
    ws: Workspace,
    job: EngineJob,
    *,
    trt_version: str,
    gpu: str,
    capability: str,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    trt: Any = None,
    cudart: Any = None,
) -> dict[str, Any]:
    """Reuse the job's engine when its record checks out, else build it; a summary dict."""
    path = engine_path(ws, job, trt_version, gpu, capability)
    graph_sha = sha256_file(job.graph)
    expected = EngineExpectation(
        trt_version=trt_version,
        gpu_name=gpu,
        compute_capability=capability,
        model_sha256=graph_sha,
        settings=job.settings.identity(),
    )
    state, reason = "built", ""
    if path.exists() or side_path(path).exists():
        try:
            record = check_engine(path, expected)
            if progress is not None:
                progress(1.0, "reused")
            return _summary(job, path, "reused", "", record.engine_size if record else 0)
        except UserError as exc:
            state, reason = "rebuilt", str(exc)
            log.warning("%s", reason)
            # Gone before the build: a cancelled rebuild must not leave the bad pair behind.
            path.unlink(missing_ok=True)
            side_path(path).unlink(missing_ok=True)
    batches = calibration_batches(ws, job, cancel) if job.calibration else None
    summary = build_engine(
        job.graph,
        job.settings,
        path,
        batches=batches,
        progress=progress,
        cancel=cancel,
        calibration_cache=calibration_cache_path(ws, job, trt_version),
        model_sha256=graph_sha,
        trt=trt,
        cudart=cudart,
    )
    out = _summary(job, path, state, reason, summary["record"]["engine_size"])
    out["build_seconds"] = summary["build_seconds"]
    out["calibration_batches"] = summary["calibration_batches"]
    return out


def _summary(job: EngineJob, path: Path, state: str, reason: str, size: int) -> dict[str, Any]:
    return {
        "variant": job.variant,
        "route": job.route,
        "graph": str(job.graph),
        "graph_label": job.graph_label,
        "engine": str(path),
        "record": str(side_path(path)),
        "state": state,
        "reason": reason,
        "bytes": size,
    }
