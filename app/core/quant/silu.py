"""SiLU (x * sigmoid(x)) in the ort-cpu INT8 graph: one float pass between a DequantizeLinear
and a QuantizeLinear, written as ONNX Runtime's own fused kernel (com.microsoft QuickGelu with
alpha 1, which computes x * sigmoid(alpha * x)).

ONNX Runtime's CPU provider has no integer SiLU. Quantized, a SiLU becomes QLinearSigmoid (a
scalar lookup table) + QLinearMul, and rounds twice. Left float the way `quantize_static` writes
it (DQ -> Sigmoid, DQ -> Mul -> Q), ONNX Runtime gives each consumer its own DequantizeLinear,
which stops its QuickGelu fusion: Sigmoid and Mul then run as two passes plus two
DequantizeLinears. Nothing in ONNX Runtime's quantization tools writes the fused form, so this
module does. Measured on YOLOX-Nano (ORT 1.31.1, 2-core Zen 5 EPYC with VNNI, profiler, 1
thread, ms per run): QLinearSigmoid 2.26 + QLinearMul 1.81; DQ 0.98 + QuickGelu 1.58 + Q 0.82.
INT8 against FP32's latency: 1.15x -> 1.00x (1 thread), 1.39x -> 1.18x (2 threads), and
mAP50-95 on coco-val-dev64 35.12 -> 35.7 (FP32 35.90): one rounding instead of two.
"""

from __future__ import annotations

import onnx
from onnx import helper

from app.core.quant.graph_rules import consumers_of

FUSED_OP = "QuickGelu"
FUSED_DOMAIN = "com.microsoft"


def _same_source(model: onnx.ModelProto) -> dict[str, str]:
    """Tensor -> the tensor it equals: a DequantizeLinear's output maps to the first
    DequantizeLinear output with the same inputs (same quantized tensor, scale, zero point)."""
    first: dict[tuple[str, ...], str] = {}
    same: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            key = tuple(node.input) + tuple(a.SerializeToString().hex() for a in node.attribute)
            same[node.output[0]] = first.setdefault(key, node.output[0])
    return same


def silu_pairs(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(Sigmoid, Mul) of every SiLU: the Mul multiplies the Sigmoid's input (or a
    DequantizeLinear of the same quantized tensor) by the Sigmoid's output, which nothing else
    reads. A gate (x * sigmoid(y), squeeze-and-excitation) is not a SiLU."""
    consumers = consumers_of(model)
    same = _same_source(model)
    outputs = {o.name for o in model.graph.output}
    pairs = []
    for sig in model.graph.node:
        if sig.op_type != "Sigmoid" or sig.output[0] in outputs:
            continue
        readers = consumers.get(sig.output[0], [])
        if len(readers) != 1 or readers[0].op_type != "Mul":
            continue
        mul = readers[0]
        others = [i for i in mul.input if i != sig.output[0]]
        x = sig.input[0]
        if len(others) == 1 and same.get(others[0], others[0]) == same.get(x, x):
            pairs.append((sig, mul))
    return pairs


def silu_node_names(model: onnx.ModelProto) -> list[str]:
    """Names of the Sigmoid and Mul nodes of every SiLU (`silu_pairs`)."""
    return [n.name for pair in silu_pairs(model) for n in pair]


def fuse_silus(model: onnx.ModelProto) -> int:
    """Replace each float SiLU (`silu_pairs`) with one QuickGelu node, in place, reading the
    Sigmoid's input and writing the Mul's output; DequantizeLinears left unread are dropped.
    Returns how many were fused."""
    pairs = silu_pairs(model)
    if not pairs:
        return 0
    # keyed by output names: unlike node names, they are always there and unique
    fused = {}
    dropped = set()
    inputs_of_dropped = set()
    for sig, mul in pairs:
        fused[mul.output[0]] = helper.make_node(
            FUSED_OP,
            [sig.input[0]],
            [mul.output[0]],
            name=f"{mul.name or mul.output[0]}_silu",
            domain=FUSED_DOMAIN,
            alpha=1.0,
        )
        dropped.add(sig.output[0])
        inputs_of_dropped.update(list(sig.input) + list(mul.input))
    nodes = [fused.get(n.output[0], n) for n in model.graph.node if n.output[0] not in dropped]
    # a DequantizeLinear that only the Mul read (its copy fed the Sigmoid) is now unread
    read = {i for n in nodes for i in n.input} | {o.name for o in model.graph.output}
    nodes = [
        n
        for n in nodes
        if n.op_type != "DequantizeLinear"
        or n.output[0] in read
        or n.output[0] not in inputs_of_dropped
    ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if not any(o.domain == FUSED_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(FUSED_DOMAIN, 1))
    return len(pairs)
