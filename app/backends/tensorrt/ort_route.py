"""Engines through ONNX Runtime's TensorRT provider: opening a session builds them into its cache.

The provider keeps its own engine cache (in `<workspace>/ort_trt/`) and decides reuse itself;
this module only chooses the graph and options per variant and refuses a silent fallback: a
session whose first provider is not TensorRT built nothing, and saying so is the point.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from app.backends.ort_trt_options import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    OrtTrtSettings,
    cache_dirs,
    ort_trt_providers,
    record_profiles,
    runner_trt_options,
    stale_engine_folders,
)
from app.backends.registry import status_of
from app.backends.tensorrt.engines import EngineJob
from app.core.atomic import write_json
from app.core.errors import UserError
from app.core.model.workspace import Workspace

log = logging.getLogger(__name__)

# onnxruntime-gpu 1.31's provider links libnvinfer.so.10: its graphs follow TensorRT 10's rules.
ORT_TRT_MAJOR = 10


def require_provider() -> None:
    """UserError with the registry's reason when the provider cannot load on this machine."""
    status = status_of("ort-tensorrt")
    if not status.available:
        raise UserError(f"cannot build with ONNX Runtime's TensorRT provider here: {status.reason}")


def ort_settings(ws: Workspace, job: EngineJob) -> OrtTrtSettings:
    """The provider options for a job planned by engines.plan_job."""
    s = job.settings
    table = None
    if job.calibration is not None:  # ORT's own table, which the provider reads
        table = job.calibration / "calibration.flatbuffers"
    return OrtTrtSettings(
        workspace=ws.root,
        precision=s.precision,
        graph=s.graph,
        calibration_table=table,
        profiles=dict(s.profiles),
        max_workspace_bytes=s.workspace_bytes,
        opt_level=s.opt_level,
        graph_path=job.graph,
    )


def build_with_provider(ws: Workspace, job: EngineJob) -> dict[str, Any]:
    """Open a session on the provider (it builds or reuses the engine); a summary dict, also
    kept as the variant's record in `<workspace>/ort_trt/records/` for the engines list."""
    import onnxruntime as ort

    settings = ort_settings(ws, job)
    for folder in cache_dirs(settings).values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    session = ort.InferenceSession(str(job.graph), providers=ort_trt_providers(settings))
    if session.get_providers()[0] != TRT_EP:
        raise UserError(
            f"ONNX Runtime fell back to {session.get_providers()[0]} for {job.variant}: the "
            "TensorRT provider built nothing (run `int8-studio backends` to see why)"
        )
    record_profiles(settings)  # what later sessions on this graph pass too (`runner_trt_options`)
    summary = {
        "variant": job.variant,
        "route": job.route,
        "graph": str(job.graph),
        "engine": str(cache_dirs(settings)["engines"]),
        "state": "ready",
    }
    fused = live_view_graph(ws, job)
    if fused is not None:  # what run, Live, Compare and bench open: built now, not on first use
        options = runner_trt_options(fused, ws.root)
        for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
        ort.InferenceSession(str(fused), providers=[(TRT_EP, options), CUDA_EP, CPU_EP])
        summary["live_view_engine"] = options["trt_engine_cache_path"]
    summary["seconds"] = round(time.perf_counter() - started, 3)
    write_json(ws.path("ort_trt", "records", f"{job.variant}.json"), _record(job, summary, ort))
    # engines of these graphs' older contents: never used again
    current = [summary.get("live_view_engine")]
    if settings.calibration_table is None:
        current.append(summary["engine"])
    for folder in filter(None, current):
        for old in stale_engine_folders(folder):
            shutil.rmtree(old, ignore_errors=True)
    return summary


def live_view_graph(ws: Workspace, job: EngineJob) -> Path | None:
    """The fused-I/O copy of the job's graph (uint8 frames in, `graph_fusion`) that run, Live,
    Compare and bench open on ort-tensorrt, when they run that graph as it is (not the FP32
    graph with a calibration table or the FP16 flag, which only `build` asks for) and the
    model's I/O can be fused; else None. Its engines land where those sessions look
    (`runner_trt_options`: one folder per graph content), wherever the copy is written."""
    from app.backends.factory import default_cache_dir
    from app.core.frames.graph_fusion import fused_model_path

    as_is = job.settings.graph != "fp32" or job.settings.precision == "fp32"
    if not as_is:
        return None
    try:
        return fused_model_path(job.graph, ws.spec(), default_cache_dir() / "fused")
    except Exception as exc:  # the live view then runs the graph unfused, as it says itself
        log.info("%s: no fused copy to prebuild (%s)", job.graph, exc)
        return None


def _record(job: EngineJob, summary: dict[str, Any], ort: Any) -> dict[str, Any]:
    """What the engines list shows for a provider-built engine (ONNX Runtime keeps its own
    cache files; this says what was asked of it, by which version, and how long it took)."""
    cache = Path(summary["engine"])
    files = [p for p in cache.glob("*") if p.is_file()] if cache.is_dir() else []
    return {
        "variant": job.variant,
        "engine": summary["engine"],
        "trt_version": f"ONNX Runtime {ort.__version__} provider",
        "gpu": "",
        "precision": job.settings.precision,
        "graph": job.settings.graph,
        "route": job.route,
        "shapes": ", ".join(
            f"{n} {'x'.join(map(str, s[1]))}" for n, s in sorted(job.settings.profiles.items())
        )
        or "fixed by the model",
        "build_seconds": summary["seconds"],
        "bytes": sum(p.stat().st_size for p in files),
        "mtime": time.time(),
    }
