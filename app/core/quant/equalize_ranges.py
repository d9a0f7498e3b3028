"""Activation equalisation for an INT8 build: per-channel maxima on the calibration images,
the equalised graph (`equalize`), and calibration ranges for the tensors whose values it
changed, collected on that graph over the same images with the same method.

Why ranges again: the calibration ran on the original graph; a scaled tensor's percentile
range cannot be derived from the unscaled tensor's, so it is measured on the equalised graph
(every other tensor keeps its calibrated range, untouched).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from app.core.errors import UserError
from app.core.model.spec import ModelSpec
from app.core.ort_session import cpu_session
from app.core.quant.calibration_images import CalibrationReader
from app.core.quant.equalize import (
    ALPHA,
    SPREAD,
    apply_site,
    find_sites,
    input_channel_weight_max,
    smooth_scales,
    uneven,
)
from app.core.safe_json import load_json

log = logging.getLogger(__name__)
EQUALIZE_VERSION = 2  # part of an equalised variant's cache key: bump when the math changes


# Per target, measured on the issue-17 protocol's tuning images (`app.benchmarks.int8_unseen
# --candidates`, resources/benchmarks/int8_unseen_*): which activations are equalised
TARGET_OPTIONS: dict[str, dict[str, float]] = {
    "ort-cpu": {"alpha": ALPHA, "spread": SPREAD},
    "tensorrt": {"alpha": ALPHA, "spread": 2.5},
    "ort-cuda": {"alpha": ALPHA, "spread": 2.5},
}


def settings(alpha: float = ALPHA, spread: float = SPREAD) -> dict[str, Any]:
    """What an equalised build depends on beyond the model and calibration (for cache keys)."""
    return {"version": EQUALIZE_VERSION, "alpha": alpha, "spread": spread}


def target_settings(target: str) -> dict[str, Any]:
    """`settings` of the default equalisation for `target`."""
    return settings(**TARGET_OPTIONS.get(target, {}))


def calibration_inputs(spec: ModelSpec, ranges_path: Path) -> tuple[list[np.ndarray], dict]:
    """The calibration's preprocessed images (from its meta.json) and its method settings."""
    folder = Path(ranges_path).parent
    try:
        meta = load_json(folder / "meta.json")
        files = [Path(p) for p in meta["images_used"]]
        method = str(meta["method"])
        percentile = float(meta.get("settings", {}).get("percentile", 99.999))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"{folder}: calibration meta.json unreadable ({exc}); calibrate again"
        ) from exc
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise UserError(
            f"{missing[0]}: a calibration image is gone ({len(missing)} of {len(files)} missing);"
            " INT8 with equalised stem ranges re-reads them: calibrate again on the folder where "
            "they are now"
        )
    batch = 1 if isinstance(spec.input_shape[0], int) else 8
    reader = CalibrationReader(spec, files, batch=batch)
    return list(reader), {"method": method, "percentile": percentile}


def channel_max(
    model: onnx.ModelProto, tensors: list[str], input_name: str, batches: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Largest |value| per channel (axis 1) of NCHW `tensors` over `batches`, reduced in-graph."""
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    opset = max(o.version for o in probe.opset_import if o.domain in ("", "ai.onnx"))
    del probe.graph.output[:]
    for k, name in enumerate(tensors):
        absolute, out = f"__eqabs{k}", f"__eqmax{k}"
        probe.graph.node.append(helper.make_node("Abs", [name], [absolute]))
        if opset >= 18:  # axes became an input in opset 18
            axes = f"__eqaxes{k}"
            probe.graph.initializer.append(
                onnx.numpy_helper.from_array(np.array([0, 2, 3], np.int64), axes)
            )
            node = helper.make_node("ReduceMax", [absolute, axes], [out], keepdims=0)
        else:
            node = helper.make_node("ReduceMax", [absolute], [out], axes=[0, 2, 3], keepdims=0)
        probe.graph.node.append(node)
        probe.graph.output.append(helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
    session = cpu_session(probe)
    result: dict[str, np.ndarray] = {}
    for batch in batches:
        for name, value in zip(tensors, session.run(None, {input_name: batch})):
            result[name] = value if name not in result else np.maximum(result[name], value)
    return result


def equalize_for_int8(
    model: onnx.ModelProto,
    ranges_path: Path,
    spec: ModelSpec,
    quantized: set[str],
    workdir: Path,
    *,
    fold_producer: bool,
    alpha: float = ALPHA,
    spread: float = SPREAD,
) -> tuple[onnx.ModelProto, Path, dict[str, Any]]:
    """The equalised graph, a ranges file covering it (written in `workdir`) and what was done.
    `quantized`: compute nodes the recipe quantizes; `fold_producer`: the target quantizes
    convolution outputs too (ort-cpu). Returns the inputs unchanged when no site is uneven."""
    from onnxruntime.quantization.calibrate import TensorsData, load_tensors_data, save_tensors_data

    from app.core.quant.ranges import collect_ranges

    sites = find_sites(model, quantized)
    info: dict[str, Any] = {
        **settings(alpha, spread),
        "tensors": [],
        "consumers": [],
        "float_nodes": [],
    }
    if not sites:
        return model, ranges_path, info
    batches, method = calibration_inputs(spec, ranges_path)
    # Folded, the producer's output x / s is quantized as well as the activation's: x's channel
    # maxima count too (a channel with large negative x and a small SiLU output would blow up)
    both = [s.pre for s in sites if fold_producer and s.kind == "silu"]
    amax = channel_max(model, [s.tensor for s in sites] + both, spec.input_name, batches)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    changed: list[str] = []
    for site in sites:
        act = amax[site.tensor]
        if site.pre in both:
            act = np.maximum(act, amax[site.pre])
        if not uneven(act, spread):
            continue
        scales = smooth_scales(act, input_channel_weight_max(model, site), alpha)
        apply_site(model, site, scales, fold_producer)
        changed += site.changed
        info["tensors"].append(site.tensor)
        info["consumers"] += site.consumers
        info["float_nodes"] += site.float_nodes
        log.debug(
            "equalised %s (%s, channel max %.3g..%.3g): scales %.3g..%.3g",
            site.tensor,
            site.kind,
            act.min(),
            act.max(),
            scales.min(),
            scales.max(),
        )
    if not changed:
        return model, ranges_path, info
    log.info(
        "equalised %d uneven conv inputs (per-channel scales into the convs that read them)",
        len(info["tensors"]),
    )
    graph_path = workdir / "equalized.onnx"
    onnx.save(model, str(graph_path))
    fresh = collect_ranges(
        graph_path,
        spec.input_name,
        batches,
        method["method"],
        changed,
        percentile=method["percentile"],
    )
    old = load_tensors_data(ranges_path)
    merged = TensorsData(old.calibration_method, {**dict(old.items()), **dict(fresh.items())})
    out = workdir / "ranges_equalized.json"
    save_tensors_data(merged, out)
    return model, out, info


def equalize_for_recipe(
    model: onnx.ModelProto,
    ranges_path: Path,
    spec: ModelSpec,
    target: str,
    args: dict[str, Any],
    workdir: Path,
    options: dict[str, float] | None = None,
) -> tuple[onnx.ModelProto, Path, dict[str, Any]]:
    """`equalize_for_int8` on the compute nodes quantize_static arguments `args` quantize; the
    nodes it needs float join `args`' exclusions. ort-cpu quantizes convolution outputs too, so
    there the producer is folded as well."""
    from app.core.quant.graph_rules import compute_nodes

    quantized = set(compute_nodes(model)) - set(args["nodes_to_exclude"])
    model, ranges_path, info = equalize_for_int8(
        model,
        ranges_path,
        spec,
        quantized,
        workdir,
        fold_producer=target == "ort-cpu",
        **{**TARGET_OPTIONS.get(target, {}), **(options or {})},
    )
    args["nodes_to_exclude"] = sorted(set(args["nodes_to_exclude"]) | set(info["float_nodes"]))
    return model, ranges_path, info
