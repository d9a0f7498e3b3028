"""What the default INT8 recipe quantizes, per target: ONNX Runtime's quantize_static arguments
(`recipe`), how many leading blocks stay float (`default_stem_blocks`), and the one-line account
of what a built variant kept float (`float_summary`). See `quantize`'s module doc for why."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from app.core.quant.graph_rules import (
    COMPUTE_OPS,
    compute_nodes,
    float_tail_nodes,
    head_compute_nodes,
    leading_compute_blocks,
)
from app.core.quant.silu import silu_node_names
from app.core.quant.targets import variant_name

MATMUL_OPS = ("Gemm", "MatMul")  # compute ops ORT's CPU runs in integers with a float output


def int8_variant_name(target: str) -> str:
    return variant_name("int8", target)


def default_stem_blocks(model: onnx.ModelProto) -> int:
    """How many leading compute blocks the default INT8 graph keeps in float: about 3% of them,
    1 to 3. Measured (ORT 1.31, Percentile, 128 COCO images): YOLOX-Nano INT8 for ort-cpu goes
    from 20.5 to 36.7 mAP50-95 (FP32 36.9) with its first two blocks float, and ResNet-8 from
    -4.0 to +0.4 top-1 with its stem conv float."""
    return min(3, max(1, round(len(compute_nodes(model)) / 40)))


def stem_nodes(model: onnx.ModelProto) -> list[str]:
    """Node names of the leading blocks the default keeps float (`default_stem_blocks`)."""
    return leading_compute_blocks(model, default_stem_blocks(model))


def weights_on_8bit_grid(model: onnx.ModelProto) -> bool:
    """True when every conv/matmul weight larger than 256 values has at most 256 distinct values:
    the sign of weights exported from quantization-aware training."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    sizes = []
    for node in model.graph.node:
        if node.op_type in COMPUTE_OPS and len(node.input) > 1 and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            if w.size > 256:
                sizes.append(len(np.unique(w)) <= 256)
    return bool(sizes) and all(sizes)


def recipe(
    target: str,
    model: onnx.ModelProto,
    keep_float: list[str] | None = None,
    seven_bit: bool | None = None,
    float_silus: bool = True,
) -> dict[str, Any]:
    """quantize_static arguments for a target; `keep_float` (node names) stay unquantized,
    by default the leading compute blocks (see `default_stem_blocks`). `seven_bit` (ort-cpu):
    7-bit weights (see below why not by default). `float_silus=False` (ort-cpu): SiLUs
    quantized as QLinearSigmoid + QLinearMul, for measuring (placement qlinear-silu)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    if keep_float is None:
        keep_float = stem_nodes(model)
    exclude = list(float_tail_nodes(model)) + list(keep_float)
    if target == "ort-cpu":
        # Prediction convs stay float: ORT's integer conv also quantizes its output (box
        # offsets, logits). A classifier's Gemm/MatMul head does not have to: ORT runs it as
        # QGemm / MatMulIntegerToFloat with a float output. Measured on EfficientNet-Lite0 (2-core
        # Zen 5 EPYC with VNNI, 177 photos): top-1 agreement with FP32 94.35% as with the Gemm
        # float, at 0.48x / 0.50x FP32's latency (1 / 2 threads) against 0.51x / 0.55x; with
        # its output quantized too (placement heads-int8) agreement fell to 93.22%. Only where
        # every Gemm/MatMul is such a head: the option applies to the op type, graph-wide.
        heads = head_compute_nodes(model)
        ops = {n.name: n.op_type for n in model.graph.node}
        matmuls = [n for n, op in ops.items() if op in MATMUL_OPS]
        float_out = bool(matmuls) and set(matmuls) <= set(heads)
        exclude += [h for h in heads if not (float_out and ops.get(h) in MATMUL_OPS)]
        # SiLUs stay float: `quantize` fuses each into one QuickGelu between DQ and Q (`silu`)
        if float_silus:
            exclude += silu_node_names(model)
        # Quantization-aware-trained weights already sit on one affine 8-bit grid per tensor;
        # per-tensor asymmetric uint8 reproduces that grid, per-channel symmetric int8 breaks
        # it (MobileNetV1 QAT: top-1 agreement with FP32 81% per-channel vs 88-90% per-tensor).
        qat_grid = weights_on_8bit_grid(model)
        # x86 without VNNI sums pairs of u8 x s8 products in 16 bits (VPMADDUBSW), which can
        # saturate; 7-bit weights cannot. Measured on an AVX2 EPYC (placement "reduce-range"):
        # EfficientNet-Lite0 top-1 agreement with FP32 80% -> 87% at the same latency, but
        # YOLOX-Nano 37.01 -> 35.83 mAP50-95 and ResNet-8 74.8 -> 73.2 top-1, so 8 bits stay
        # the default. (uint8 weights: 91% agreement on EfficientNet, 5x slower.)
        return {
            "quant_format": QuantFormat.QDQ,
            "per_channel": not qat_grid,
            "reduce_range": bool(seven_bit) and not qat_grid,  # off unless asked
            "activation_type": QuantType.QUInt8,
            "weight_type": QuantType.QUInt8 if qat_grid else QuantType.QInt8,
            "nodes_to_exclude": sorted(set(exclude)),
            "extra_options": {
                "ActivationSymmetric": False,
                "WeightSymmetric": not qat_grid,
                **({"OpTypesToExcludeOutputQuantization": list(MATMUL_OPS)} if float_out else {}),
            },
        }
    # TensorRT and OpenVINO: Q/DQ on the inputs of compute ops only; each runtime fuses the
    # activation after a conv and the next quantization into its own integer conv. TensorRT
    # requires zero points of 0; OpenVINO takes uint8 activations with a zero point, which
    # fit a SiLU's [-0.28, max] range without giving up half the codes.
    asymmetric = target == "openvino"
    # OpenVINO also takes the per-tensor uint8 weights that keep a QAT model's own grid (see
    # ort-cpu above); TensorRT needs symmetric weights
    qat_grid = asymmetric and weights_on_8bit_grid(model)
    return {
        "quant_format": QuantFormat.QDQ,
        "op_types_to_quantize": sorted(COMPUTE_OPS),
        "per_channel": not qat_grid,
        "reduce_range": False,
        "activation_type": QuantType.QUInt8 if asymmetric else QuantType.QInt8,
        "weight_type": QuantType.QUInt8 if qat_grid else QuantType.QInt8,
        "nodes_to_exclude": sorted(set(exclude)),
        "extra_options": {
            "ActivationSymmetric": not asymmetric,
            "WeightSymmetric": not qat_grid,
            "QDQKeepRemovableActivations": True,
            # recent ORT also quantizes conv/gemm outputs; TensorRT wants Q/DQ on inputs only
            "OpTypesToExcludeOutputQuantization": sorted(COMPUTE_OPS),
        },
    }


def describe_types(args: dict[str, Any]) -> dict[str, Any]:
    """What a recipe's quantize_static arguments make of activations and weights, for the
    variant's record."""
    from onnxruntime.quantization import QuantType

    asymmetric = args["activation_type"] == QuantType.QUInt8
    weights = "uint8 per-tensor (the model's own 8-bit weight grid kept)"
    if args["per_channel"]:
        weights = "int8 symmetric per-channel"
        if args["reduce_range"]:
            weights += ", 7-bit (this CPU's U8S8 kernels saturate without VNNI)"
    return {
        "activation": "uint8 asymmetric" if asymmetric else "int8 symmetric",
        "weights": weights,
        "reduce_range": args["reduce_range"],
    }


def float_summary(meta: dict[str, Any]) -> str | None:
    """One line on what an INT8 variant kept float and why, for the CLI and the GUI."""
    if not meta.get("compute_ops"):
        return None
    sensitive = meta.get("sensitive_blocks_float") or []
    pools = meta.get("pools_float") or []
    equalised = (meta.get("equalization") or {}).get("tensors") or []
    return (
        f"{meta.get('name', 'int8')}: {meta['compute_ops_kept_float']} of {meta['compute_ops']} "
        "convolutions/matmuls kept float"
        + (f", {len(sensitive)} because alone they wreck the output" if sensitive else "")
        + (f"; {len(pools)} average pool(s) float (output range < half the input's)" * bool(pools))
        + (f"; {len(equalised)} uneven conv inputs equalised" * bool(equalised))
    )
