"""How much each compute block alone degrades the output: the FP32 graph with only that block's
activations passed through their real Q/DQ parameters and its weight replaced by its dequantized
INT8 values (graph editing, no quantizer run per block), output SQNR against FP32.

Shared by the default recipe (`sensitive_blocks`) and the per-layer analysis of
`app.core.precision.debug`; it sits in the quantization layer so the recipe can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from app.core.errors import CancelToken
from app.core.ort_session import cpu_session
from app.core.quant.graph_rules import COMPUTE_OPS, compute_blocks
from app.core.quant.shift import shift_origins


def sqnr(signal: float, noise: float) -> float:
    if noise <= 0:
        return 120.0
    if signal <= 0:
        return -120.0
    return float(10 * np.log10(signal / noise))


def qdq_params(qmodel: onnx.ModelProto) -> dict[str, dict[str, Any]]:
    """Activation Q nodes of a Q/DQ graph: input tensor -> scale, zero point, dequantized name.
    A tensor the graph quantizes shifted (`shift`) is named by its unshifted source, with the
    zero point that puts the same grid on it; "offset" (c) and "pads" say how to read the
    dequantized tensor back in the source's values and shape."""
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    dq_of = {n.input[0]: n.output[0] for n in qmodel.graph.node if n.op_type == "DequantizeLinear"}
    shifted = shift_origins(qmodel)
    out: dict[str, dict[str, Any]] = {}
    # unpadded shifted copies first: their dequantized values have the source tensor's shape
    order = sorted(
        (n for n in qmodel.graph.node if n.op_type == "QuantizeLinear"),
        key=lambda n: bool((shifted.get(n.input[0]) or {}).get("pads")),
    )
    for node in order:
        if node.input[0] in inits:
            continue
        scale = inits.get(node.input[1])
        zp = inits.get(node.input[2]) if len(node.input) > 2 else np.zeros((), np.uint8)
        if scale is None or node.output[0] not in dq_of:
            continue
        info = np.iinfo(zp.dtype)
        s, z = float(np.ravel(scale)[0]), float(np.ravel(zp)[0])
        entry = {
            "dq": dq_of[node.output[0]],
            "clip": ((info.min - z) * s, (info.max - z) * s),
            "scale": np.asarray(scale),
            "zero_point": np.asarray(zp),
        }
        origin = shifted.get(node.input[0])
        if origin is not None:  # the shifted grid, on the unshifted tensor (see `shift`)
            if origin["source"] in out:
                continue
            c = origin["shift"]
            z -= round(c / s)
            entry.update(
                clip=((info.min - z) * s, (info.max - z) * s),
                zero_point=np.asarray(z, zp.dtype),
                offset=c,
                pads=origin["pads"],
            )
            out[origin["source"]] = entry
        else:
            out[node.input[0]] = entry
    return out


def tensor_owners(model: onnx.ModelProto) -> dict[str, str]:
    """Tensor -> compute node of the block that produces or consumes it (producer first)."""
    owner: dict[str, str] = {}
    node_block = {name: block[0] for block in compute_blocks(model) for name in block}
    for node in model.graph.node:
        if node.name in node_block:
            for t in node.output:
                owner.setdefault(t, node_block[node.name])
    for node in model.graph.node:
        if node.name in node_block:
            for t in node.input:
                owner.setdefault(t, node_block[node.name])
    return owner


def block_members(model: onnx.ModelProto, owned: dict[str, list[str]]) -> dict[str, list[str]]:
    """Node names to keep float so that a block's quantized tensors (`owned`: block head ->
    tensors) all stay float: the block, every consumer of those tensors (a tensor shared with
    another consumer would still be quantized for that one) and the non-compute node writing
    one (a quantized Add or Concat - ResNet's residual sums - would leave it its Q/DQ)."""
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node.name)
    producer = {t: node for node in model.graph.node for t in node.output}
    out = {}
    for block in compute_blocks(model):
        members = list(block)
        for t in owned.get(block[0], []):
            members += [c for c in consumers.get(t, []) if c not in members]
            p = producer.get(t)
            if p is not None and p.op_type not in COMPUTE_OPS and p.name not in members:
                members.append(p.name)
        out[block[0]] = members
    return out


def insert_qdq(model: onnx.ModelProto, tensor: str, params: dict[str, Any]) -> None:
    """Route every consumer of `tensor` through QuantizeLinear -> DequantizeLinear."""
    scale_name, zp_name = f"{tensor}__sens_scale", f"{tensor}__sens_zp"
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(params["scale"].astype(np.float32), scale_name),
            numpy_helper.from_array(params["zero_point"], zp_name),
        ]
    )
    if any(o.name == tensor for o in model.graph.output):
        return  # a graph output keeps its float value
    q_out, dq_out = f"{tensor}__sens_q", f"{tensor}__sens_dq"
    for node in model.graph.node:
        for j, name in enumerate(node.input):
            if name == tensor:
                node.input[j] = dq_out
    producer = next((idx for idx, n in enumerate(model.graph.node) if tensor in n.output), -1)
    new = [
        onnx.helper.make_node("QuantizeLinear", [tensor, scale_name, zp_name], [q_out]),
        onnx.helper.make_node("DequantizeLinear", [q_out, scale_name, zp_name], [dq_out]),
    ]
    for offset, node in enumerate(new, start=1):
        model.graph.node.insert(producer + offset, node)


# Float activations kept for `output_sensitivity`'s downstream runs; beyond this it runs every
# block's whole graph, as it did before (a large model at a large input size)
CACHE_BYTES = 1024**3


def _downstream(fmodel: onnx.ModelProto, start: set[str]) -> tuple[list[onnx.NodeProto], set[str]]:
    """The nodes `start` (node names) reach, themselves included, in graph order (which ONNX
    keeps topological), and the tensors those nodes read from outside them."""
    inits = {i.name for i in fmodel.graph.initializer}
    nodes, made = [], set()
    for node in fmodel.graph.node:
        if node.name in start or any(t in made for t in node.input):
            nodes.append(node)
            made.update(node.output)
    needed = {t for n in nodes for t in n.input if t and t not in made and t not in inits}
    return nodes, needed


def _downstream_model(
    fmodel: onnx.ModelProto, nodes: list[onnx.NodeProto], needed: set[str], types: dict[str, int]
) -> onnx.ModelProto:
    """The float graph from `needed` (as its inputs) through `nodes` to its first output."""
    graph = onnx.helper.make_graph(
        nodes,
        "downstream",
        [
            onnx.helper.make_tensor_value_info(t, types.get(t, onnx.TensorProto.FLOAT), None)
            for t in sorted(needed)
        ],
        [fmodel.graph.output[0]],
        list(fmodel.graph.initializer),
    )
    model = onnx.helper.make_model(graph, opset_imports=list(fmodel.opset_import))
    model.ir_version = fmodel.ir_version
    model.functions.extend(fmodel.functions)
    return model


def output_sensitivity(
    fmodel: onnx.ModelProto,
    input_name: str,
    units: list[tuple[str, list[str]]],
    qp: dict[str, dict[str, Any]],
    weight_match: dict[str, dict[str, np.ndarray]],
    batches: list[np.ndarray],
    cancel: CancelToken,
    progress: Callable[[float], None],
) -> dict[str, float]:
    """Output SQNR (dB) vs FP32 with only one block quantized, for every (block head, its
    quantized tensors) in `units`. Local noise does not say how far an error travels; this does.

    Only the part of the graph a block's quantization reaches is run again, from the float
    activations it reads (computed once per image): the same numbers as running the whole graph
    per block, in about half the time. Written by hand: ONNX Runtime's qdq_loss_debug compares
    tensors locally and has no per-block output measurement."""
    consumers: dict[str, list[str]] = {}
    for node in fmodel.graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node.name)
    output = fmodel.graph.output[0].name
    parts = {}
    for block, tensors in units:
        start = {block, *(c for t in tensors for c in consumers.get(t, []))}
        parts[block] = _downstream(fmodel, start)
    kept = sorted({t for _, needed in parts.values() for t in needed} - {input_name})
    probe = onnx.ModelProto.FromString(fmodel.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(probe)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    extra = [t for t in kept if t not in {o.name for o in probe.graph.output}]
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(t, types.get(t, onnx.TensorProto.FLOAT), None)
        for t in extra
    )
    base = cpu_session(probe)
    names = [o.name for o in base.get_outputs()]
    reference, cached = [], []
    for b in batches:
        values = dict(zip(names, base.run(None, {input_name: b})))
        reference.append(values[output].astype(np.float64))
        cached.append({t: values[t] for t in kept} | {input_name: b})
    if sum(v.nbytes for c in cached for v in c.values()) > CACHE_BYTES:
        cached, parts = [], {}  # too much to keep: every block runs the whole graph
    signal = sum(float((r**2).sum()) for r in reference)
    out: dict[str, float] = {}
    nodes = {n.name: n for n in fmodel.graph.node}
    for i, (block, tensors) in enumerate(units):
        cancel.check()
        if block in parts:
            part, needed = parts[block]
            if not any(output in n.output for n in part):
                out[block] = round(sqnr(signal, 0.0), 2)  # it does not reach the output
                progress((i + 1) / len(units))
                continue
            model = _downstream_model(fmodel, part, needed, types)
        else:
            model = onnx.ModelProto.FromString(fmodel.SerializeToString())
            needed = {input_name}
        head = nodes[block]
        weight = head.input[1] if len(head.input) > 1 else ""
        if weight in weight_match and "dequantized" in weight_match[weight]:
            deq = weight_match[weight]["dequantized"].astype(np.float32)
            for init in model.graph.initializer:
                if init.name == weight:
                    init.CopyFrom(numpy_helper.from_array(deq, weight))
        for t in tensors:
            insert_qdq(model, t, qp[t])
        sess = cpu_session(model)
        noise = 0.0
        for k, (b, r) in enumerate(zip(batches, reference)):
            feed = {t: cached[k][t] for t in needed} if cached else {input_name: b}
            y = sess.run(None, feed)[0].astype(np.float64)
            noise += float(((y - r) ** 2).sum())
        out[block] = round(sqnr(signal, noise), 2)
        progress((i + 1) / len(units))
    return out


def measure_blocks(
    float_path: Path,
    qdq_path: Path,
    input_name: str,
    batches: list[np.ndarray],
    cancel: CancelToken,
    progress: Callable[[float], None],
) -> list[dict[str, Any]]:
    """Every block with something quantized in the fully quantized graph at `qdq_path` (built
    from the named graph at `float_path`): {block, nodes (to keep it float), tensors,
    output_sqnr_db}, worst first."""
    from app.core.quant.weight_matching import match_weights

    fmodel, qmodel = onnx.load(str(float_path)), onnx.load(str(qdq_path))
    weight_match = match_weights(float_path, qdq_path)
    qp = qdq_params(qmodel)
    owner = tensor_owners(fmodel)
    owned: dict[str, list[str]] = {}
    for name in sorted(qp):
        if name in owner:
            owned.setdefault(owner[name], []).append(name)
    members = block_members(fmodel, owned)
    nodes = {n.name: n for n in fmodel.graph.node}
    units = []
    for block in compute_blocks(fmodel):
        head = nodes[block[0]]
        weight = head.input[1] if len(head.input) > 1 else ""
        if owned.get(block[0]) or "dequantized" in weight_match.get(weight, {}):
            units.append((block[0], owned.get(block[0], [])))
    sens = output_sensitivity(
        fmodel, input_name, units, qp, weight_match, batches, cancel, progress
    )
    rows = [
        {"block": b, "nodes": members[b], "tensors": t, "output_sqnr_db": sens[b]} for b, t in units
    ]
    return sorted(rows, key=lambda r: r["output_sqnr_db"])
