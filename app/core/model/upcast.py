"""An FP32 copy of a half-precision ONNX export, so it can be calibrated like any FP32 model.

Exporters write FP16 graphs with float16 inputs and outputs (Ultralytics `half=True`, torch
`.half()`); the app starts from FP32 and builds its own FP16 and INT8 variants. Every float16
weight is widened to float32 (exactly: each FP16 value is an FP32 value), every float16 tensor
type, Cast target, constant and dtype attribute becomes float32, in subgraphs too. The copy
computes the same function in FP32, so its outputs differ from the FP16 model's only by FP16's
own rounding of intermediate values.

onnx, onnxconverter-common and ONNX Runtime's float16 tools convert FP32 to FP16 only; none
goes back, so this is written here. `adapted_copy` writes the copy.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from app.core.errors import UserError
from app.core.model.graph_inputs import rename_reads

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT
DTYPE_ATTRS = {"to", "dtype"}  # Cast's target; EyeLike / RandomNormal... output types


def _widen_tensor(tensor: onnx.TensorProto) -> bool:
    if tensor.data_type != F16:
        return False
    wide = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)
    tensor.CopyFrom(wide)
    return True


def _widen_nodes(nodes) -> int:
    """Widen the float16 dtype attributes, constants and subgraphs of `nodes` in place."""
    changed = 0
    for node in nodes:
        for attr in node.attribute:
            if attr.name in DTYPE_ATTRS and attr.type == onnx.AttributeProto.INT and attr.i == F16:
                attr.i = F32
                changed += 1
            elif attr.type == onnx.AttributeProto.TENSOR:
                changed += _widen_tensor(attr.t)
            elif attr.type == onnx.AttributeProto.TENSORS:
                changed += sum(_widen_tensor(t) for t in attr.tensors)
            elif attr.type == onnx.AttributeProto.GRAPH:
                changed += _widen_graph(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                changed += sum(_widen_graph(g) for g in attr.graphs)
    return changed


def _widen_graph(graph: onnx.GraphProto) -> int:
    """Widen `graph` in place (its subgraphs too); how many float16 things changed."""
    changed = sum(_widen_tensor(t) for t in graph.initializer)
    for vi in (*graph.input, *graph.output, *graph.value_info):
        if vi.type.tensor_type.elem_type == F16:
            vi.type.tensor_type.elem_type = F32
            changed += 1
    return changed + _widen_nodes(graph.node)


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the top graph's float32 tensors, by shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    typed = (*graph.input, *graph.value_info, *graph.output)
    floats = {vi.name for vi in typed if vi.type.tensor_type.elem_type == F32}
    return floats | {t.name for t in graph.initializer if t.data_type == F32}


def drop_noop_casts(model: onnx.ModelProto) -> int:
    """Remove the top graph's Casts from float32 to float32, in place; how many. A float16
    converter's Casts become these once widened (here or by another tool), and they keep its
    names (`graph_input_cast_0`): the app's own FP16 variant, made by the same converter, would
    add Casts of the same names beside them."""
    graph = model.graph
    floats = _float_tensors(model)
    outputs = {o.name for o in graph.output}
    inputs = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    dropped = []
    for node in graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type != "Cast" or to != F32 or node.input[0] not in floats:
            continue
        src, dst = node.input[0], node.output[0]
        if dst in outputs:  # the graph output keeps its name: its producer writes it directly
            if src in inputs or src in outputs:
                continue
            old, new = src, dst
        else:
            old, new = dst, src
        for other in graph.node:
            other.output[:] = [new if o == old else o for o in other.output]
        rename_reads(graph, old, new)
        dropped.append(node)
    for node in dropped:
        graph.node.remove(node)
    return len(dropped)


def upcast_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """(an FP32 copy of `model`, how many float16 tensors, types and attributes it widened)."""
    if any(t.data_type == F16 for t in model.graph.sparse_initializer):
        raise UserError("sparse float16 weights are not supported; export the model in FP32")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    changed = _widen_graph(copy.graph)
    changed += sum(_widen_nodes(fn.node) for fn in copy.functions)  # model-local functions
    return copy, changed
