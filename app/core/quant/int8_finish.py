"""The steps that finish an INT8 graph around `quantize_static` in `quantize.make_int8`: the
default keep list (stem and sensitive blocks), bias correction of the written graph (shifted
tensors included) and ONNX Runtime's finishing touches (float convs guarded, SiLUs fused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from app.core.quant.bias_correction import correct_biases, load_channel_means
from app.core.quant.float_convs import guard_float_convs
from app.core.quant.recipe import stem_nodes
from app.core.quant.sensitive_blocks import load_sensitive_nodes
from app.core.quant.shift import shifted_means
from app.core.quant.silu import fuse_silus
from app.core.quant.targets import FLOAT_CONV_GUARD_TARGETS


def default_keep(
    model: onnx.ModelProto, calibration: Path, target: str
) -> tuple[list[str] | None, list[str]]:
    """The default's keep list (None: the recipe's stem rule alone) and the sensitive blocks in
    it beyond the stem: the blocks this calibration's sensitivity measurement found to ruin the
    output on their own (`sensitive_blocks`, measured by `quantize` first)."""
    sensitive = load_sensitive_nodes(calibration, target) or []
    if not sensitive:
        return None, []
    stem = stem_nodes(model)
    sensitive = [n for n in sensitive if n not in stem]
    return stem + sensitive, sensitive


def finish_for_onnxruntime(path: Path, target: str) -> tuple[list[str], int]:
    """The graph at `path` finished in place for ONNX Runtime: float convs guarded from its
    per-tensor weight rounding (`float_convs`; ort-cpu and openvino) and, on ort-cpu, float SiLUs
    fused (`silu`). The openvino layout runs on ONNX Runtime too (`evaluate`, the precision
    search and sensitivity, a user's ort-cpu run): unguarded, the HaGRID crop classifier's float
    stem conv, behind the DequantizeLinear its quantized skip conv shares, got per-tensor int8
    weights there; its int8-ov read top-1 agreement 88.3% on ONNX Runtime against 95.1% with the
    weights float as written (photos-misc103). OpenVINO takes the guard's per-channel
    DequantizeLinear as it is. The TensorRT layout leaves no float conv behind a
    DequantizeLinear and takes per-tensor activation scales only, so it is left alone. Returns
    the convs guarded and the number of SiLUs fused."""
    if target not in FLOAT_CONV_GUARD_TARGETS:
        return [], 0
    qmodel = onnx.load(str(path))
    guarded = guard_float_convs(qmodel)
    silus = fuse_silus(qmodel) if target == "ort-cpu" else 0
    if guarded or silus:
        onnx.save(qmodel, str(path))
    return guarded, silus


def built_without_means(meta: dict[str, Any] | None) -> bool:
    """Whether a variant's record says its bias correction was wanted but not made, for want
    of channel means (`correct_bias_at`'s reason)."""
    correction = (meta or {}).get("bias_correction")
    return isinstance(correction, dict) and str(correction.get("reason", "")).endswith(
        "channel_means.json"
    )


def correct_bias_at(
    path: Path,
    model: onnx.ModelProto,
    calibration: Path,
    wanted: bool,
    shifted: dict[str, tuple[str, float, int]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Rewrite the int32 biases of the graph at `path` once: `bias_correction` where `wanted`,
    and the exact folding of every shift (`shift.shifted_means`; `shifted`: {new tensor: (the
    tensor it shifts, by how much, its channels)}). Returns what bias correction did and the
    convs whose bias now folds a shift."""
    shifted = shifted or {}
    means = load_channel_means(calibration) if wanted else None
    reason = (
        "not asked"
        if not wanted
        else f"no {calibration.name}/channel_means.json"
        if means is None
        else None
    )
    table = shifted_means(means or {}, shifted)
    done: list[str] = []
    if table:
        qmodel = onnx.load(str(path))
        done = correct_biases(qmodel, model, table)
        onnx.save(qmodel, str(path))
    inputs = {n.name: n.input[0] for n in model.graph.node if n.op_type == "Conv"}
    folded = [c for c in done if inputs.get(c) in shifted]
    info = {"convs": len(done)} if reason is None else {"convs": 0, "reason": reason}
    return info, folded
