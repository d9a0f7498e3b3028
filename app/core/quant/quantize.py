"""Variants of a workspace's model: INT8 Q/DQ graphs (per target), FP16, and `fp32-prep`, FP32
with a Focus stem folded (`prepared_fp32`), which a CPU target also times against FP32.

INT8 graphs use ONNX Runtime's `quantize_static` on the ranges the calibration step collected,
with Q/DQ placed the way each target executes them:
  * ort-cpu: uint8 asymmetric activations, int8 symmetric per-channel weights (the layout ORT's
    CPU integer kernels run fast), head convs and the float tail kept in float;
  * tensorrt / ort-cuda: int8 symmetric everywhere (TensorRT requires zero points of 0), Q/DQ
    only on the inputs of compute ops so TensorRT can fuse conv + activation, per-channel
    weights on the output-channel axis, opset >= 13; a conv input whose range sits mostly on
    one side of 0 (a SiLU or ReLU output) is quantized shifted onto the whole grid (`shift`),
    bias corrected and with the sensitive blocks float, as ort-cpu;
  * openvino: Q/DQ on the inputs of compute ops only, as for TensorRT, but uint8 activations
    with a zero point (OpenVINO fuses the SiLU and the next quantization into its integer conv,
    which ONNX Runtime's CPU provider cannot; see `app/backends/openvino_cpu.py`), bias
    corrected and with the sensitive blocks float, as ort-cpu.
Before quantization the graph is prepared (`prepare`: constants folded, pads folded into
convolutions and pools), so no float node is stranded between a DequantizeLinear and a
QuantizeLinear. For ort-cpu, besides the leading stem blocks, the default keeps float any block
that alone wrecks the output (`sensitive_blocks`, measured once per calibration). Activations
whose channels' ranges differ widely (YOLOX-Nano's stem) can
be equalised on request (`equalize`, per-channel scales folded into the next convolution's
weights, exact in float) and their ranges measured again, so the stem is quantized too. The
ort-cpu placement was chosen by measurement (`app.benchmarks.int8_speed`):
uint8 activations with int8 weights (U8S8) beat S8S8 by 1.2-2x on AVX2, and a SiLU runs in
float as one fused QuickGelu between DQ and Q (`silu`), faster and more exact than ORT's
QLinearSigmoid + QLinearMul (placement qlinear-silu) and than an unfused float SiLU. With
`measure_speed` the new INT8 graph is timed against FP32 on this machine, and the result says
whether INT8 is faster here.
Every variant is keyed (model hash, preprocessing, calibration key, settings) and reused only
when its key and file hash match.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import onnx

from app.core.atomic import atomic_path
from app.core.defaults import PREPARED_FP32
from app.core.errors import CancelToken, UserError
from app.core.model.checks import already_int8_note, quantized_node_count
from app.core.model.files import file_sha256
from app.core.model.spec import ModelSpec
from app.core.model.staleness import built_from
from app.core.model.workspace import Workspace, cache_key
from app.core.quant.bias_correction import ensure_channel_means
from app.core.quant.calibration import check_calibration, latest_calibration
from app.core.quant.equalize_ranges import equalize_for_recipe, target_settings
from app.core.quant.fp16 import FP16_BLOCK_OPS, FP16_VERSION, make_fp16
from app.core.quant.graph_rules import (
    MIN_QDQ_OPSET,
    compute_nodes,
    leading_compute_blocks,
    name_nodes,
    raise_opset,
)
from app.core.quant.int8_finish import (
    built_without_means,
    correct_bias_at,
    default_keep,
    finish_for_onnxruntime,
)
from app.core.quant.placements import apply_placement
from app.core.quant.pools import narrowing_pools
from app.core.quant.prepare import prepare_for_quantization
from app.core.quant.prepared_fp32 import (
    PREPARED_VERSION,
    NotPrepared,
    make_prepared_fp32,
)
from app.core.quant.range_floors import floor_ranges
from app.core.quant.ranges import read_ranges
from app.core.quant.recipe import describe_types, int8_variant_name, recipe, stem_nodes
from app.core.quant.sensitive_blocks import ensure_sensitive_blocks
from app.core.quant.shift import shift_for_int8
from app.core.quant.silu_choice import QUANTIZED
from app.core.quant.targets import (  # noqa: F401  (TARGET_OF_BACKEND re-exported)
    BIAS_CORRECTED_TARGETS,
    EQUALIZE_BY_DEFAULT,
    EQUALIZED_STEM_BLOCKS,
    FLOAT_CONV_GUARD_TARGETS,
    FLOAT_POOL_TARGETS,
    FLOORED_TARGETS,
    SHIFTED_TARGETS,
    SPEED_TARGETS,
    TARGET_OF_BACKEND,
    TARGETS,
    equalized_stem_blocks,
)
from app.core.quant.variant_speed import time_built_variants

log = logging.getLogger(__name__)
PRECISIONS = ("int8", "fp16", PREPARED_FP32)  # what `quantize` builds (fp32 is the model)
Progress = Callable[[float, str], None]
QUANTIZE_VERSION = 17  # 4: graph prepared first; 5: bias correction; 6: equalisation option;
# 7: sensitive blocks kept float; 8: Gemm/MatMul heads quantized with a float output;
# 9: float convs guarded from ONNX Runtime's per-tensor weight rounding (`float_convs`);
# 10: SiLUs float, fused into one QuickGelu between DQ and Q (`silu`); 11: the openvino
# layout's float convs guarded too (it is also run, searched and scored on ONNX Runtime);
# 12: the TensorRT layout's conv inputs shifted onto the whole symmetric grid (`shift`), with
# bias correction and sensitive blocks float there too; 13: the ort-cpu layout's SiLU inputs
# floored at -8 (`range_floors`); 14: its average pools that narrow their range float
# (`pools`), and the inputs of residual Adds before a Relu floored too (`range_floors`);
# 15: and the input of an Add of a constant (a bias) before a Relu (`range_floors`); 16: an
# equalised TensorRT-layout graph (`quantize --equalize`) keeps the default's stem and sensitive
# blocks float (targets.EQUALIZED_STEM_BLOCKS); 17: a Focus stem's slices folded into its conv
# (`space_to_depth`)


def make_int8(
    source: Path,
    ranges_path: Path,
    out_path: Path,
    target: str,
    keep_float: list[str] | None = None,
    *,
    placement: str = "default",
    prepare: bool = True,
    correct_bias: bool | None = None,
    equalize_with: ModelSpec | None = None,
    equalize_options: dict[str, float] | None = None,
    shift: bool | None = None,
    range_floors: bool | None = None,
    float_pools: bool | None = None,
) -> dict[str, Any]:
    """Write the INT8 Q/DQ graph for `target`; returns what was done (for the variant's meta).
    `placement` (ort-cpu only, see `placements`), `prepare=False` and `correct_bias` (True /
    False instead of the target's default) exist for measuring the alternatives; the app itself
    always uses the defaults. Biases are corrected (by default on BIAS_CORRECTED_TARGETS, see
    `bias_correction`) when the calibration folder holds its channel means, which `quantize`
    measures first. `equalize_with` (the workspace's spec, whose
    preprocessing reads the calibration images again): equalise uneven activations first
    (`equalize_ranges`), and then, unless `keep_float` says otherwise, keep no stem block
    float; `equalize_options` (alpha, spread) exist for measuring. `shift` and `range_floors`
    (True / False instead of the target's default) measure activation shifting (`shift`) and
    the floors under the ranges of tensors a SiLU or an Add + Relu reads (`range_floors`);
    `float_pools=False` quantizes every pool as ONNX Runtime's quantizer does (`pools`)."""
    from onnxruntime.quantization import quantize_static

    # ORT insists the cached ranges' method matches the one it is told
    method, widths = read_ranges(ranges_path)
    # Named before preparation, so the names callers pass in `keep_float` (taken from the
    # original graph) still address the same nodes; the optimizer keeps the names it does not
    # fold away.
    model = name_nodes(raise_opset(onnx.load(str(source)), MIN_QDQ_OPSET))
    preparation: dict[str, Any] = {"prepared": False, "reason": "not asked"}
    if prepare:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        model, preparation = prepare_for_quantization(model, workdir=out_path.parent)
        model = name_nodes(model)

    pools: list[str] = []

    def arguments(graph: onnx.ModelProto, keep: list[str] | None) -> dict[str, Any]:
        args = recipe(target, graph, keep, float_silus=placement != "qlinear-silu")
        if float_pools is not False and target in FLOAT_POOL_TARGETS:  # (`pools`)
            pools[:] = narrowing_pools(graph, widths)
            args["nodes_to_exclude"] = sorted(set(args["nodes_to_exclude"]) | set(pools))
        if placement != "default":
            if target != "ort-cpu":
                raise UserError(f"placement '{placement}' exists for target ort-cpu only")
            args = apply_placement(placement, graph, args)
        return args

    # The default also keeps float the blocks this calibration's sensitivity measurement found
    # to ruin the output on their own (`sensitive_blocks`, measured by `quantize` first)
    sensitive: list[str] = []  # beyond the stem, which the default keeps float anyway
    stem_blocks = equalized_stem_blocks(target, equalize_with is not None)
    if keep_float is None and stem_blocks is None:
        keep_float, sensitive = default_keep(model, ranges_path.parent, target)
    # Equalised, the default may quantize the stem blocks it evened out (EQUALIZED_STEM_BLOCKS)
    stem = None
    if stem_blocks is not None and keep_float is None:
        stem = stem_nodes(model)
        keep_float = leading_compute_blocks(model, stem_blocks)
    args = arguments(model, keep_float)
    # The named copy sits beside the output as a hidden .part folder, not in /tmp: a killed
    # quantize leaves it where opening the workspace cleans leftovers up.
    out_path.parent.mkdir(parents=True, exist_ok=True)
    equalization: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(
        prefix=f".{out_path.name}.", suffix=".part", dir=out_path.parent
    ) as tmp:
        if equalize_with is not None:
            model, ranges_path, equalization = equalize_for_recipe(
                model, ranges_path, equalize_with, target, args, Path(tmp), equalize_options
            )
            if stem is not None and not equalization["tensors"]:
                # nothing uneven anywhere: the default graph, as without equalisation
                keep_default, sensitive = default_keep(model, ranges_path.parent, target)
                args = arguments(model, keep_default)
            elif stem is not None and not set(equalization["consumers"]) & set(stem):
                # nothing uneven fed the stem: it stays float, as without equalisation
                args = arguments(model, None)
                args["nodes_to_exclude"] = sorted(
                    set(args["nodes_to_exclude"]) | set(equalization["float_nodes"])
                )
        quant_ranges = ranges_path
        if shift is None:
            shift = target in SHIFTED_TARGETS
        shifting: dict[str, Any] | None = None
        if shift:
            quantized = set(compute_nodes(model)) - set(args["nodes_to_exclude"])
            model, quant_ranges, shifting = shift_for_int8(model, ranges_path, quantized, Path(tmp))
        if range_floors is None:
            range_floors = target in FLOORED_TARGETS
        flooring: dict[str, Any] | None = None
        if range_floors:  # uint8 conv outputs whose readers flatten the low end (`range_floors`)
            quant_ranges, flooring = floor_ranges(model, quant_ranges, Path(tmp))
        named = Path(tmp) / "named.onnx"
        onnx.save(model, str(named))
        with atomic_path(out_path) as part:
            quantize_static(
                str(named),
                str(part),
                calibration_data_reader=None,
                calibrate_method=method,
                calibration_cache_path=str(quant_ranges),
                **args,
            )
            sources = shifting.pop("sources", {}) if shifting is not None else {}
            # channel means were measured before equalisation: not valid for an equalised graph
            if correct_bias is None:  # the target's default
                correct_bias = target in BIAS_CORRECTED_TARGETS
            equalized = equalization is not None and bool(equalization["tensors"])
            corrected, folded = correct_bias_at(
                part, model, ranges_path.parent, correct_bias and not equalized, sources
            )
            if correct_bias and equalized:
                corrected["reason"] = "equalised: the channel means were measured before"
            if shifting is not None:
                shifting["exact_biases"] = len(folded)
            guarded, silus = finish_for_onnxruntime(part, target)
            onnx.checker.check_model(str(part))
            written = file_sha256(part)  # what this run wrote, not what is at the name later
    qmodel = onnx.load(str(out_path), load_external_data=False)
    n_q = sum(n.op_type == "QuantizeLinear" for n in qmodel.graph.node)
    if n_q == 0:
        raise UserError(f"{source}: quantization inserted no Q/DQ nodes; is this a float model?")
    total = len(compute_nodes(model))
    kept = [n for n in args["nodes_to_exclude"] if n in set(compute_nodes(model))]
    return {
        "sha256": written,
        "quantize_nodes": n_q,
        "opset": max(o.version for o in qmodel.opset_import if o.domain in ("", "ai.onnx")),
        "compute_ops": total,
        "compute_ops_kept_float": len(kept),
        "kept_float": kept,
        "preparation": preparation,
        "placement": placement,
        **describe_types(args),
        "bias_correction": corrected,
        "float_convs_guarded": guarded,
        "silus_fused": silus,
        "sensitive_blocks_float": [n for n in sensitive if n in set(kept)],
        **({"equalization": equalization} if equalization is not None else {}),
        **({"shift": shifting} if shifting is not None else {}),
        **({"range_floors": flooring} if flooring is not None else {}),
        **({"pools_float": list(pools)} if pools else {}),
    }


def quantize(
    ws: Workspace,
    *,
    precisions: tuple[str, ...] | list[str] = ("int8", "fp16"),  # or PRECISIONS
    target: str = "ort-cpu",
    calibration: Path | None = None,
    keep_float: list[str] | None = None,
    variant_name: str | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    measure_speed: bool = False,
    equalize: bool | None = None,
    placement: str = "default",
) -> list[dict[str, Any]]:
    """Build (or reuse) the requested variants; returns their metadata (see module doc). With
    `measure_speed` an INT8 variant for a CPU target (SPEED_TARGETS) also gets a "speed" entry:
    its latency against FP32's on this machine and runtime, timed for a few seconds
    (`speed.measure_int8_speed`). `placement`
    (ort-cpu): one of `placements.PLACEMENTS` (mixed precision quantizes the heads there)."""
    if target not in TARGETS:
        raise UserError(f"unknown target '{target}'; choose one of {', '.join(TARGETS)}")
    equalize = EQUALIZE_BY_DEFAULT[target] if equalize is None else equalize
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise UserError(f"unknown precision {bad}; choose from {', '.join(PRECISIONS)}")
    cancel = cancel or CancelToken()
    outer = progress or (lambda f, m: None)
    timing = measure_speed and target in SPEED_TARGETS
    # with timing, building takes the bar's first 80% and timing the rest (seconds a variant)
    progress = (lambda f, m: outer(0.8 * f, m)) if timing else outer
    spec = ws.spec()
    source = Path(spec.path)
    if not source.is_file():
        raise UserError(f"{source}: the workspace's model file is gone; open the model again")
    out = []
    int8_build: Callable[..., dict[str, Any]] | None = None  # for `silu_choice`'s second form
    for i, precision in enumerate(precisions):
        cancel.check()
        base = i / len(precisions)
        start = base  # where this variant's own build begins on the bar
        means = True  # INT8: whether its bias correction can be made (channel means measured)
        if precision == "fp16":
            name = "fp16"
            key = cache_key("fp16", QUANTIZE_VERSION, FP16_VERSION, spec.sha256, FP16_BLOCK_OPS)
            meta = {"precision": "fp16", "target": "any", "key": key}
            build = partial(make_fp16, source)
        elif precision == PREPARED_FP32:
            name = PREPARED_FP32
            key = cache_key(PREPARED_FP32, QUANTIZE_VERSION, PREPARED_VERSION, spec.sha256)
            meta = {"precision": "fp32", "target": "any", "key": key}
            build = partial(make_prepared_fp32, source, pre=spec.preprocess)
        else:
            name = variant_name or int8_variant_name(target)
            quantized = quantized_node_count(onnx.load(str(source), load_external_data=False))
            if quantized:  # e.g. a TFLite-converted SSD: Q/DQ from its own training
                note = already_int8_note(source, quantized)
                log.info(note)
                progress(base + 1 / len(precisions), f"{name}: not made (already INT8)")
                out.append({"name": name, "precision": "int8", "skipped": note})
                continue
            calib = check_calibration(ws, calibration) if calibration else latest_calibration(ws)
            ranges = calib / "ranges.json"
            if target in BIAS_CORRECTED_TARGETS:  # the means bias correction needs (once)
                progress(base, "measuring channel means for bias correction")
                means = ensure_channel_means(ws, calib, cancel) is not None
            sensitive: list[str] = []
            if keep_float is None and equalized_stem_blocks(target, equalize) is None:
                share = 0.5 / len(precisions)  # of this variant's part of the bar
                sensitive = ensure_sensitive_blocks(
                    ws,
                    calib,
                    target,
                    make_int8,
                    cancel,
                    lambda f, m, b=base, w=share: progress(
                        b + w * f, f"finding the blocks INT8 must not touch: {m}"
                    ),
                )
                start = base + share
            key = cache_key(
                "int8",
                QUANTIZE_VERSION,
                spec.sha256,
                spec.preprocess_key(),
                calib.name,
                target,
                None if keep_float is None else sorted(keep_float),
                # an equalised graph differs, and so does the stem it quantizes
                [target_settings(target), EQUALIZED_STEM_BLOCKS.get(target)] if equalize else None,
                None if placement == "default" else placement,
                sorted(sensitive) or None,  # measured per calibration; the rule may change
            )
            meta = {"precision": "int8", "target": target, "key": key, "calibration": calib.name}
            build = int8_build = partial(
                make_int8,
                source,
                ranges,
                target=target,
                keep_float=keep_float,
                placement=placement,
                equalize_with=spec if equalize else None,
            )
        # built without its bias correction for want of means (calibration photos moved, a
        # model whose means could not be measured then): rebuilt once they exist
        missed = means and built_without_means(ws.variant_meta(name))
        if ws.valid_variant(name, key) and not missed:
            log.info("variant %s reused (key %s matches)", name, key)
            progress(base + 1 / len(precisions), f"{name}: reused")
            out.append({**(ws.variant_meta(name) or {}), "reused": True})
            continue
        if ws.variant_path(name).exists():
            log.info("variant %s rebuilt: its key or file no longer matches", name)
        progress(start, f"building {name}")
        try:
            details = build(ws.variant_path(name))
        except NotPrepared as exc:  # nothing to fold: fp32 is that graph already
            log.info("%s not made: %s", name, exc)
            progress(base + 1 / len(precisions), f"{name}: not made")
            out.append({"name": name, "precision": "fp32", "skipped": str(exc)})
            continue
        cancel.check()
        meta.update(built_from(spec, meta))  # what it was built from: stale when they change
        ws.record_variant(name, {**meta, **details, "source": str(source)})
        out.append({**(ws.variant_meta(name) or {}), "reused": False})
        progress(base + 1 / len(precisions), f"{name}: built")
    if timing:
        int8_quantized = None if int8_build is None else partial(int8_build, placement=QUANTIZED)
        on_bar = lambda f, m: outer(0.8 + 0.2 * f, m)  # noqa: E731
        time_built_variants(ws, out, target, int8_quantized, placement, on_bar, cancel)
    return out
