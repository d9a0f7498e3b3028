"""A workspace's engines for the CLI and the GUI alike: build them (progress, cancel), list them
with their records, and pick the one a variant runs as on the `tensorrt` backend.

Qt-free: `int8-studio build` calls these from the main thread, the Variants panel from a worker
(`progress(fraction, message)` and `cancel` as every job takes them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.backends.tensorrt.deps import gpu_identity, import_cudart, import_tensorrt, parse_trt_major
from app.backends.tensorrt.engine_header import read_record
from app.backends.tensorrt.engines import (
    VARIANTS,
    EngineJob,
    EngineOptions,
    ensure_engine,
    plan_job,
)
from app.backends.tensorrt.status import tensorrt_status
from app.core import defaults
from app.core.errors import CancelToken, UserError
from app.core.model.workspace import Workspace
from app.core.safe_json import load_json

Progress = Callable[[float, str], None]
ENGINE_KINDS = ("tensorrt", "ort-tensorrt")  # native TensorRT, ONNX Runtime's TensorRT provider
# What `build` builds and the panel ticks when not told: every variant, as every command's
# --variants; the FP32 engine is also the reference an evaluation on `tensorrt` compares with.
DEFAULT_VARIANTS = tuple(defaults.VARIANTS)
# App variants that run as an engine of another name: the Q/DQ graph made for TensorRT is what
# the int8 engine is built from.
ENGINE_VARIANT_OF = {"int8-trt": "int8"}
# How to get the provider route, said after the registry's reason why it is unavailable.
PROVIDER_HINT = (
    "to get it, on a machine with an NVIDIA GPU: pip install onnxruntime-gpu tensorrt-cu12 "
    "--extra-index-url https://pypi.nvidia.com (the provider needs TensorRT 10)"
)


def unavailable_sentence(kind: str, reason: str) -> str:
    """Why `kind` engines cannot be built here and how to get them, as the panel shows it."""
    if kind == "tensorrt":
        return f"cannot build TensorRT engines on this machine: {reason}"
    return f"cannot build with ONNX Runtime's TensorRT provider here: {reason}; {PROVIDER_HINT}"


@dataclass(frozen=True)
class InstalledTensorRT:
    """The TensorRT and CUDA modules this process builds with, and the GPU they build for."""

    trt: Any
    cudart: Any
    version: str
    major: int
    gpu: str
    capability: str


def installed_tensorrt(trt: Any = None, cudart: Any = None) -> InstalledTensorRT:
    """The installed TensorRT (or the modules given, for tests); UserError with the status's
    one-line reason (what is missing and how to get it) when engines cannot be built here."""
    status = tensorrt_status(
        load_tensorrt=(lambda: trt) if trt is not None else import_tensorrt,
        load_cudart=(lambda: cudart) if cudart is not None else import_cudart,
    )
    if not status.available:
        raise UserError(unavailable_sentence("tensorrt", status.reason))
    trt = trt if trt is not None else import_tensorrt()
    cudart = cudart if cudart is not None else import_cudart()
    version = str(trt.__version__)
    gpu, capability = gpu_identity(cudart, 0)
    return InstalledTensorRT(trt, cudart, version, parse_trt_major(version), gpu, capability)


def plan_jobs(
    ws: Workspace, variants: list[str], options: EngineOptions, major: int
) -> list[EngineJob]:
    """Every variant's job, planned before any is built: one that cannot be built refuses all."""
    return [plan_job(ws, v, options, major) for v in variants]


def _share(progress: Progress | None, index: int, count: int, variant: str) -> Progress | None:
    """One variant's progress as its share of the whole build, its name before each phase."""
    if progress is None:
        return None
    return lambda f, m: progress((index + f) / count, f"{variant}: {m}")


def build_engines(
    ws: Workspace,
    variants: list[str],
    options: EngineOptions,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    progress_for: Callable[[str], Progress] | None = None,
    trt: Any = None,
    cudart: Any = None,
) -> dict[str, Any]:
    """Build (or reuse) the engines of `variants`; {workspace, trt_version, gpu, capability,
    engines: [ensure_engine's summary per variant]}.

    progress: one bar for the whole build (the panel); progress_for(variant): a bar per variant
    (the CLI), used instead. trt / cudart: the modules, for tests.
    """
    here = installed_tensorrt(trt, cudart)
    jobs = plan_jobs(ws, variants, options, here.major)  # refuse before building any
    results = []
    for i, job in enumerate(jobs):
        if cancel is not None:
            cancel.check()
        if progress_for is not None:
            step = progress_for(job.variant)
        else:
            step = _share(progress, i, len(jobs), job.variant)
        results.append(
            ensure_engine(
                ws,
                job,
                trt_version=here.version,
                gpu=here.gpu,
                capability=here.capability,
                progress=step,
                cancel=cancel,
                trt=here.trt,
                cudart=here.cudart,
            )
        )
    return {
        "workspace": str(ws.root),
        "trt_version": here.version,
        "gpu": here.gpu,
        "capability": here.capability,
        "engines": results,
    }


def build_with_provider_engines(
    ws: Workspace,
    variants: list[str],
    options: EngineOptions,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """The `ort-tensorrt` route: a provider session per variant builds (or reuses) its engine in
    the workspace's cache. ONNX Runtime reports no phases, so progress moves per variant."""
    from app.backends.tensorrt.ort_route import ORT_TRT_MAJOR, build_with_provider, require_provider

    require_provider()
    jobs = plan_jobs(ws, variants, options, ORT_TRT_MAJOR)
    results = []
    for i, job in enumerate(jobs):
        if cancel is not None:
            cancel.check()
        if progress is not None:
            progress(i / len(jobs), f"{job.variant}: ONNX Runtime's TensorRT provider is building")
        results.append(build_with_provider(ws, job))
    if progress is not None:
        progress(1.0, "engine cache ready")
    return {"workspace": str(ws.root), "engines": results}


# listing ---------------------------------------------------------------------------------------
def _shapes(settings: dict[str, Any]) -> str:
    """The profile per input, `name 1x3x416x416` when min = opt = max, else min..max (opt)."""
    parts = []
    for name, shapes in sorted((settings.get("profiles") or {}).items()):
        mn, opt, mx = ("x".join(str(d) for d in s) for s in shapes)
        parts.append(f"{name} {mn}" if mn == opt == mx else f"{name} {mn}..{mx} (opt {opt})")
    return ", ".join(parts) or "fixed by the model"


def _route(settings: dict[str, Any]) -> str:
    if settings.get("precision") == "int8" and settings.get("int8_source") == "calibrator":
        return "calibrator"
    return f"{settings.get('graph', '')} graph"


def _native_entry(path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "tensorrt",
        "variant": path.name.split("-trt", 1)[0],
        "engine": str(path),
        "bytes": path.stat().st_size,
        "mtime": path.stat().st_mtime,
    }
    try:
        record = read_record(path)
    except UserError as exc:
        return {**entry, "ok": False, "problem": str(exc)}
    if record is None:
        return {**entry, "ok": False, "problem": "no INT8 Studio record beside it"}
    s = record.settings
    ok = record.engine_size == entry["bytes"]
    return {
        **entry,
        "ok": ok,
        "problem": "" if ok else "size differs from its record (truncated or replaced)",
        "trt_version": record.trt_version,
        "gpu": f"{record.gpu_name} (sm {record.compute_capability})",
        "precision": s.get("precision", ""),
        "graph": s.get("graph", ""),
        "route": _route(s),
        "shapes": _shapes(s),
        "build_seconds": record.build_seconds,
        "version_compatible": bool(s.get("version_compatible")),
    }


def _provider_entries(ws: Workspace) -> list[dict[str, Any]]:
    """Records the `ort-tensorrt` route writes per variant (ort_route.py)."""
    out = []
    for path in sorted((ws.root / "ort_trt" / "records").glob("*.json")):
        try:
            r = load_json(path, max_bytes=1024 * 1024)
        except (OSError, ValueError) as exc:
            out.append({"kind": "ort-tensorrt", "variant": path.stem, "ok": False,
                        "problem": f"unreadable record {path.name} ({exc})", "engine": str(path),
                        "bytes": 0, "mtime": 0.0})  # fmt: skip
            continue
        out.append({"kind": "ort-tensorrt", "ok": True, "problem": "", **r})
    return out


def list_engines(ws: Workspace) -> list[dict[str, Any]]:
    """Every engine built in the workspace with what its record says (native ones first), and
    whether it looks usable (`ok`, else `problem`); cheap: no engine is hashed or loaded."""
    folder = ws.root / "engines"
    native = [_native_entry(p) for p in sorted(folder.glob("*.engine"))] if folder.is_dir() else []
    return native + _provider_entries(ws)


def engine_for_variant(ws: Workspace, name: str) -> Path:
    """The engine the `tensorrt` backend runs for app variant `name` (the newest usable one);
    UserError saying how to build it when there is none."""
    variant = ENGINE_VARIANT_OF.get(name, name)
    if variant not in VARIANTS:
        raise UserError(
            f"variant '{name}' has no TensorRT engine: engines are built for "
            f"{', '.join(VARIANTS)}; run '{name}' on an ONNX Runtime backend"
        )
    found = [e for e in list_engines(ws) if e["kind"] == "tensorrt" and e["variant"] == variant]
    usable = [e for e in found if e["ok"]]
    if name == "int8-trt":  # the engine of that very graph when there is one
        usable = [e for e in usable if e.get("graph") == "qdq"] or usable
    if not usable:
        why = f" ({found[-1]['problem']})" if found else ""
        raise UserError(
            f"no TensorRT engine of '{variant}' is built in {ws.root / 'engines'}{why}; build it "
            f"in Variants > Engines or run `int8-studio build --workspace {ws.root} "
            f"--variants {variant}`"
        )
    return Path(max(usable, key=lambda e: e["mtime"])["engine"])


def built_variants(ws: Workspace) -> list[str]:
    """Variants with a usable native engine, so they can be chosen on `tensorrt` even where the
    workspace has no ONNX graph of that name (TensorRT 10 builds FP16 from the FP32 graph)."""
    names = {e["variant"] for e in list_engines(ws) if e["kind"] == "tensorrt" and e["ok"]}
    return [v for v in VARIANTS if v in names]


def engine_for_graph(ws: Workspace, graph: str | Path) -> Path:
    """`engine_for_variant` for a variant given by its ONNX file (the user's model is fp32)."""
    path = Path(graph).resolve()
    if path == Path(ws.spec().path).resolve() or path == ws.variant_path("fp32").resolve():
        return engine_for_variant(ws, "fp32")
    if path.parent == (ws.root / "variants").resolve() and path.suffix == ".onnx":
        return engine_for_variant(ws, path.stem)
    raise UserError(f"{path.name} is not a variant of {ws.root}; TensorRT runs built engines only")


def engine_runner_factory(ws: Workspace, factory: Callable[[str, Path], Any]) -> Callable:
    """`factory(backend, model_path)` where `tensorrt` gets a variant's ONNX file: that
    variant's built engine is run instead (evaluation hands variants over as ONNX files)."""

    def make(backend: str, model_path: Path) -> Any:
        if backend == "tensorrt" and Path(model_path).suffix == ".onnx":
            model_path = engine_for_graph(ws, model_path)
        return factory(backend, model_path)

    return make
