"""FP16 variants: the compute part of a graph in half precision, its decoding and NMS in FP32.

The float tail (`graph_rules.float_tail_nodes`), from its first node that computes new values
on (box decoding, class offsets, NonMaxSuppression, TopK, the Gathers on kept indices, padding),
stays FP32 as a whole. The tail's nodes before that point only move values or squash them into
0..1 (sigmoids, concats, reshapes: all of a raw YOLOX head's tail) and stay FP16 as before: on a
GPU every extra Cast is one more kernel launch in a launch-bound model.
ONNX Runtime's converter cannot do this by itself: a node on its block list computes in FP32
but its output is cast back to FP16 for the next node, so every tensor between two blocked
nodes still passes through FP16. That is what broke the class-aware NMS of end-to-end exports
(boxes offset by class * 4096: from class 16 on the offset exceeds FP16's 65504, the boxes
become inf, NMS suppresses nothing and near-duplicates fill the output; COCO mAP50-95 of the
YOLOX-derived layouts 35.4 -> 27.0). So the graph is split: the part before the FP32 tail is
converted with FP32 outputs, and the tail is appended unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnx

from app.core.atomic import atomic_path
from app.core.errors import UserError
from app.core.model.files import file_sha256
from app.core.model.node_order import sort_nodes
from app.core.quant.graph_rules import (
    dedupe_outputs,
    float_tail_nodes,
    name_nodes,
)
from app.core.quant.space_to_depth import fold_space_to_depth

log = logging.getLogger(__name__)
# ops that overflow or lose range in FP16 wherever they sit (the float tail is FP32 anyway)
# Quantize/DequantizeLinear too: in a model that already holds Q/DQ (a TFLite-converted SSD) the
# converter turned their scales into FP16, which opsets before 19 refuse ("Type 'tensor(float16)'
# of input parameter (scale__87) of operator (DequantizeLinear) is invalid": the variant was
# written, then failed to load in evaluate and bench).
FP16_BLOCK_OPS = ["Resize", "Range", "Exp", "Softmax", "TopK", "NonMaxSuppression"]
FP16_BLOCK_OPS += ["QuantizeLinear", "DequantizeLinear"]
FP16_VERSION = 4  # 2: decoding and NMS stay FP32 as a whole; 3: Q/DQ nodes stay FP32;
# 4: a Focus stem's slices folded into its conv first (`space_to_depth`)
# tail ops that only move, select or squash values into 0..1: exact enough in FP16
PASSIVE_TAIL_OPS = frozenset(
    {"Sigmoid", "Softmax", "Concat", "Reshape", "Transpose", "Slice", "Split", "Squeeze"}
    | {"Unsqueeze", "Flatten", "Identity"}
)


def names_used(nodes: list[onnx.NodeProto]) -> set[str]:
    """Every tensor name the nodes read, subgraphs (If, Loop, Scan bodies) included."""
    used: set[str] = set()
    for node in nodes:
        used.update(node.input)
        for attr in node.attribute:
            for graph in [attr.g] if attr.HasField("g") else list(attr.graphs):
                used.update(names_used(list(graph.node)))
    return used


def fp32_tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the float-tail nodes that stay FP32: each that is not passive (see
    PASSIVE_TAIL_OPS) and everything after it (nodes named, in topological order)."""
    tail = set(float_tail_nodes(model))
    kept: list[str] = []
    fp32_tensors: set[str] = set()
    for node in model.graph.node:
        if node.name in tail and (
            node.op_type not in PASSIVE_TAIL_OPS or fp32_tensors.intersection(node.input)
        ):
            kept.append(node.name)
            fp32_tensors.update(node.output)
    return kept


def _half(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(model, keep_io_types=True, op_block_list=FP16_BLOCK_OPS)
    model = dedupe_outputs(model)
    sort_nodes(model)  # the converter appends its Casts after their readers
    return model


def half_before_tail(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """`model` (nodes named) with its decoding and NMS (`fp32_tail_nodes`) in FP32 and the rest
    in FP16; returns it and how many nodes stayed FP32 as tail (0: converted whole)."""
    tail_names = set(fp32_tail_nodes(model))
    tail = [n for n in model.graph.node if n.name in tail_names]
    body = [n for n in model.graph.node if n.name not in tail_names]
    if not tail or not body:
        return _half(model), 0
    typed = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v
        for v in (*typed.graph.input, *typed.graph.value_info, *typed.graph.output)
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
    }
    tail_reads = names_used(tail)
    outputs = {o.name for o in model.graph.output}
    # tensors the body hands over: to the tail or straight to the graph's outputs
    crossing = list(
        dict.fromkeys(o for n in body for o in n.output if o in tail_reads or o in outputs)
    )
    unknown = [t for t in crossing if t not in types]
    if unknown:  # without their types the converter cannot keep them FP32
        log.info("FP16: types of %s unknown; the float tail is converted too", unknown[:3])
        return _half(model), 0
    part = onnx.ModelProto()
    part.CopyFrom(model)
    part.graph.ClearField("node")
    part.graph.node.extend(body)
    part.graph.ClearField("output")
    part.graph.output.extend(types[t] for t in crossing)
    body_reads = names_used(body)
    part.graph.ClearField("initializer")
    part.graph.initializer.extend(i for i in model.graph.initializer if i.name in body_reads)
    part.graph.ClearField("value_info")
    half = _half(part)
    # The tail gets its constants in FP32; one the body also uses (and so now holds in FP16)
    # is copied under a new name for the tail. A constant that is itself a graph output (the
    # HaGRID detector's `labels`) is kept as it was.
    converted = {i.name: i.data_type for i in half.graph.initializer}
    rename: dict[str, str] = {}
    for init in model.graph.initializer:
        if init.name in outputs and init.name not in converted:
            half.graph.initializer.append(init)
            continue
        if init.name not in tail_reads:
            continue
        if init.name not in converted:
            half.graph.initializer.append(init)
        elif converted[init.name] != init.data_type:
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = rename[init.name] = f"{init.name}_fp32_tail"
            half.graph.initializer.append(copy)
    for node in tail:
        node.input[:] = [rename.get(i, i) for i in node.input]
    half.graph.node.extend(tail)
    half.graph.ClearField("output")
    half.graph.output.extend(model.graph.output)
    sort_nodes(half)
    return half, len(tail)


def make_fp16(source: Path, out_path: Path) -> dict[str, Any]:
    """FP16 graph with FP32 inputs and outputs; decoding, NMS and ops that overflow or lose
    range stay FP32 (see module doc). (Keeping the prediction convs, the first 8 or the last
    third of the convs in FP32 as well was measured on an H100 and changed no FP16-vs-FP32
    detection, so it is not offered.)"""
    model, focus = fold_space_to_depth(name_nodes(onnx.load(str(source))))
    try:
        model, kept_tail = half_before_tail(model)
    except ValueError as exc:  # dedupe_outputs: the converter's Cast names are the model's own
        raise UserError(
            f"{source}: cannot build its FP16 variant ({exc}: the model already has tensors "
            "named as the float16 converter names its Casts, as one converted to FP16 and back "
            f"elsewhere does); let `int8-studio adapt --model {source}` write a copy without "
            "those Casts and open that"
        ) from exc
    with atomic_path(out_path) as part:
        onnx.save(model, str(part))
        onnx.checker.check_model(str(part))
        written = file_sha256(part)
    return {
        "sha256": written,
        "keep_io_types": True,
        "kept_fp32_ops": FP16_BLOCK_OPS,
        "kept_fp32_tail_nodes": kept_tail,
        "space_to_depth_folded": focus,
    }
