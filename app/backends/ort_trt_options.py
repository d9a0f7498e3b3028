"""ONNX Runtime TensorRT execution-provider options, built from the app's settings (pure).

Option names, meanings and the calibration-table rules are in shared/docs/TENSORRT.md section 8.
The rules that matter most here:
- A Q/DQ graph carries its own scales; giving it a calibration table is refused (ORT PR #8969:
  "User should not provide calibration table if the model has QDQ nodes").
- ORT resolves `trt_int8_calibration_table_name` relative to `trt_engine_cache_path`, so the
  engine cache path is set to the folder holding the table.
- With both precision flags off, recent ORT on TensorRT 10 builds a strongly typed network
  (per the fact sheet: ORT PR #24298), so FP16 and Q/DQ graphs keep the precision in the graph.
  Builds from before that change need the flags set: `legacy_weak_typing=True`.
- The provider names a cached engine after the graph's file *name* and its input and node-output
  names, with the OS, ORT, CUDA and TensorRT versions (`TRTGenerateId`,
  onnxruntime/core/providers/tensorrt/tensorrt_execution_provider_utils.h), not after its weights
  or Q/DQ scales: a re-quantized `int8-trt.onnx` would silently load the engine built from the
  old scales. So engines go into one folder per graph *content* (`engine_folder`), and every
  session on the provider, not only `build`'s, uses that cache (`runner_trt_options`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.backends.tensorrt.settings import GRAPH_KINDS, PRECISIONS, ProfileShapes, validate_profiles
from app.core.atomic import write_json
from app.core.errors import UserError
from app.core.frames.graph_fusion import FUSED_NAME_MARK
from app.core.model.files import file_sha256
from app.core.safe_json import load_json

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
ORT_TABLE_SUFFIX = ".flatbuffers"  # what onnxruntime.quantization.write_calibration_table writes


@dataclass(frozen=True)
class OrtTrtSettings:
    """What the user chose for one ORT TensorRT-provider variant of a model."""

    workspace: str | os.PathLike[str]  # the model's workspace folder; caches live under it
    precision: str = "fp32"
    graph: str = "fp32"
    calibration_table: str | os.PathLike[str] | None = None  # file inside the workspace
    native_calibration_table: bool = False  # True: a TensorRT-written cache, not ORT's table
    engine_cache: bool = True
    timing_cache: bool = True
    profiles: dict[str, ProfileShapes] = field(default_factory=dict)
    max_workspace_bytes: int | None = None
    opt_level: int | None = None
    device_id: int = 0
    legacy_weak_typing: bool = False
    graph_path: str | os.PathLike[str] | None = None  # the graph the session opens (its cache key)


def profile_shape_options(profiles: dict[str, Any]) -> dict[str, str]:
    """`trt_profile_{min,opt,max}_shapes` strings like "images:1x3x416x416"; all three or none."""
    clean = validate_profiles(profiles)
    if not clean:
        return {}
    out = {}
    for k, key in enumerate(
        ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")
    ):
        out[key] = ",".join(
            f"{name}:{'x'.join(str(d) for d in shapes[k])}" for name, shapes in clean.items()
        )
    return out


def _precision_flags(s: OrtTrtSettings, table: Path | None) -> dict[str, Any]:
    if s.precision not in PRECISIONS:
        raise UserError(f"unknown precision '{s.precision}'; choose one of {', '.join(PRECISIONS)}")
    if s.graph not in GRAPH_KINDS:
        raise UserError(f"unknown graph kind '{s.graph}'; choose one of {', '.join(GRAPH_KINDS)}")
    if s.graph == "qdq" and s.precision != "int8":
        raise UserError("a Q/DQ graph runs as INT8; choose precision int8 for it")
    if s.graph == "fp16" and s.precision != "fp16":
        raise UserError("the FP16 graph runs as FP16; choose precision fp16 or the FP32 graph")
    if table is not None and not (s.precision == "int8" and s.graph == "fp32"):
        if s.graph == "qdq":
            raise UserError(
                "a Q/DQ graph must not get a calibration table: its scales are already in the "
                "graph; drop the table or run the FP32 graph with it"
            )
        raise UserError("a calibration table only applies to INT8 from the FP32 graph")

    weak = s.legacy_weak_typing
    if s.precision == "fp16":
        # FP32 graph: only the flag gives FP16. FP16 graph: flag off keeps strong typing.
        return {"trt_fp16_enable": True} if s.graph == "fp32" or weak else {}
    if s.precision == "int8" and s.graph == "qdq":
        return {"trt_int8_enable": True} if weak else {}
    if s.precision == "int8":
        if table is None:
            raise UserError(
                "INT8 from the FP32 graph needs a calibration table; run Calibrate first "
                "or use the Q/DQ graph"
            )
        if s.native_calibration_table and table.suffix == ORT_TABLE_SUFFIX:
            raise UserError(
                f"{table.name} is ONNX Runtime's table, not a TensorRT-native cache; "
                "turn the native-table option off"
            )
        if not s.native_calibration_table and table.suffix != ORT_TABLE_SUFFIX:
            raise UserError(
                f"{table.name} is not ONNX Runtime's calibration.flatbuffers table; pick that "
                "file, or turn the native-table option on for a TensorRT-written cache"
            )
        return {
            "trt_int8_enable": True,
            "trt_int8_calibration_table_name": table.name,
            "trt_int8_use_native_calibration_table": s.native_calibration_table,
        }
    return {}


ENGINE_FOLDER_HASH = 12  # hex digits of the graph's sha256 in its engine folder's name
# Beside a graph's engines: the shape profiles `build` built them with. `build` passes profiles
# (at least batch 1 for a dynamic-batch input, `engines.default_profiles`); a later session on the
# same graph that passed none would not be asking for the engine `build` made.
PROFILES_FILE = "profiles.json"


def engine_folder(root: str | os.PathLike[str], graph: str | os.PathLike[str]) -> Path:
    """The provider's engine cache folder for `graph` under `root`: `<stem>-<sha256[:12]>`, one
    per graph content (see the module doc for why the provider's own naming is not enough)."""
    return Path(root) / f"{Path(graph).stem}-{file_sha256(Path(graph))[:ENGINE_FOLDER_HASH]}"


def stale_engine_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """Sibling folders of engine folder `folder` made for older contents of the same graph: the
    same stem with another hash, or for a fused-I/O copy (`<variant>.fused-<key>`, its name keyed
    by content already) the same variant's copies with another key."""
    folder = Path(folder)
    stem = folder.name[: -(ENGINE_FOLDER_HASH + 1)]
    variant, fused, _ = stem.partition(FUSED_NAME_MARK)
    tail = rf"{re.escape(FUSED_NAME_MARK)}[0-9a-f]+" if fused else ""
    same = re.compile(rf"{re.escape(variant)}{tail}-[0-9a-f]{{{ENGINE_FOLDER_HASH}}}")
    return sorted(
        p for p in folder.parent.iterdir() if p != folder and p.is_dir() and same.fullmatch(p.name)
    )


def cache_dirs(s: OrtTrtSettings) -> dict[str, Path]:
    """Folders the provider writes to; the caller creates them before opening the session."""
    base = Path(s.workspace) / "ort_trt"
    table = Path(s.calibration_table) if s.calibration_table is not None else None
    # The table name is resolved inside the engine cache folder, so that folder is the table's
    # (a calibration's folder: its key already names the model and the ranges).
    if table is not None:
        engines = table.parent
    elif s.graph_path is not None:
        engines = engine_folder(base / "engines", s.graph_path)
    else:
        engines = base / "engines"
    return {"engines": engines, "timing": base / "timing"}


def trt_provider_options(s: OrtTrtSettings) -> dict[str, Any]:
    """The TensorRT EP options dict for `s`; UserError for combinations that cannot work."""
    table = Path(s.calibration_table) if s.calibration_table is not None else None
    opts: dict[str, Any] = {"device_id": int(s.device_id)}
    opts.update(_precision_flags(s, table))
    dirs = cache_dirs(s)
    if s.engine_cache or table is not None:
        opts["trt_engine_cache_path"] = str(dirs["engines"])
    if s.engine_cache:
        opts["trt_engine_cache_enable"] = True
        # Variants of one model share the folder; the prefix keeps their engines apart.
        opts["trt_engine_cache_prefix"] = f"{s.graph}_{s.precision}"
    if s.timing_cache:
        opts["trt_timing_cache_enable"] = True
        opts["trt_timing_cache_path"] = str(dirs["timing"])
    if s.max_workspace_bytes is not None:
        if s.max_workspace_bytes <= 0:
            raise UserError("the TensorRT workspace must be larger than 0 bytes")
        opts["trt_max_workspace_size"] = int(s.max_workspace_bytes)
    if s.opt_level is not None:
        if not 0 <= s.opt_level <= 5:
            raise UserError(f"builder optimisation level must be 0..5, got {s.opt_level}")
        opts["trt_builder_optimization_level"] = int(s.opt_level)
    opts.update(profile_shape_options(s.profiles))
    return opts


def record_profiles(s: OrtTrtSettings) -> Path | None:
    """Keep the profiles of a build of the graph as it is in its engine folder (one per graph
    content) for `runner_trt_options`; the file written, or None when there is nothing to keep
    (no profiles, or a calibration-table build, whose engines live with the table)."""
    clean = validate_profiles(s.profiles)
    if not clean or s.calibration_table is not None or s.graph_path is None:
        return None
    path = cache_dirs(s)["engines"] / PROFILES_FILE
    write_json(path, {name: [list(shape) for shape in shapes] for name, shapes in clean.items()})
    return path


def recorded_profiles(folder: str | os.PathLike[str]) -> dict[str, ProfileShapes]:
    """The profiles `record_profiles` kept in an engine folder; {} when none or unreadable (the
    session then passes none, as before the build)."""
    try:
        data = load_json(Path(folder) / PROFILES_FILE)
        return validate_profiles(data) if isinstance(data, dict) else {}
    except (OSError, ValueError, TypeError, UserError):
        return {}


def workspace_of(graph: str | os.PathLike[str]) -> Path | None:
    """The workspace a variant graph belongs to (`<workspace>/variants/<name>.onnx`), if any."""
    graph = Path(graph)
    root = graph.parent.parent
    if graph.parent.name == "variants" and (root / "spec.json").is_file():
        return root
    return None


def runner_trt_options(graph: str | os.PathLike[str], cache_root: str | os.PathLike[str]) -> dict:
    """Provider options for running `graph` as it is (its own precision: a Q/DQ graph as INT8,
    an FP16 graph as FP16, else FP32), with the engine and timing caches under
    `<cache_root>/ort_trt/`, the same folders `build` uses for that graph."""
    import onnx

    from app.core.model.checks import quantized_node_count
    from app.core.quant.graph_rules import computes_in_fp16

    graph = Path(graph)
    if quantized_node_count(onnx.load(str(graph), load_external_data=False)):
        kind, precision = "qdq", "int8"
    elif computes_in_fp16(str(graph)):
        kind, precision = "fp16", "fp16"
    else:
        kind, precision = "fp32", "fp32"
    s = OrtTrtSettings(workspace=cache_root, precision=precision, graph=kind, graph_path=graph)
    # the shapes `build` built this graph's engine for, so that this session asks for that engine
    s = replace(s, profiles=recorded_profiles(cache_dirs(s)["engines"]))
    return trt_provider_options(s)  # the runner creates the folders when the provider loads


def ort_trt_providers(
    s: OrtTrtSettings, cuda_options: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]] | str]:
    """Provider list for `InferenceSession`: TensorRT, then CUDA, then CPU for what neither takes.

    The session may still silently fall back; the runner compares `get_providers()` with this.
    """
    cuda = {"device_id": int(s.device_id), **(cuda_options or {})}
    return [(TRT_EP, trt_provider_options(s)), (CUDA_EP, cuda), CPU_EP]
