"""A batch axis in front of an image input that has none ([3, H, W] or [H, W, 3]).

torchvision's detection models (Faster R-CNN, RetinaNet, FCOS, SSD) export one image as a
`[3, H, W]` input; every step of the app feeds `[N, C, H, W]` or `[N, H, W, C]`. The copy takes
`[1, 3, H, W]` under the same input name and squeezes the batch axis away as its first node, so
the rest of the graph is untouched and computes exactly what it did. No library adds an input
axis to an ONNX graph (onnx.compose merges whole models, with renaming), so it is written here.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from app.core.model.graph_inputs import data_inputs, rename_reads

IMAGE_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.UINT8)


def _dims(vi: onnx.ValueInfoProto) -> list[onnx.TensorShapeProto.Dimension]:
    return list(vi.type.tensor_type.shape.dim)


def unbatched_image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto | None:
    """The model's one input when it is a 3-channel image without a batch axis ([3, H, W] or
    [H, W, 3], float or uint8); None otherwise."""
    inputs = data_inputs(model)
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type not in IMAGE_TYPES:
        return None
    dims = _dims(inputs[0])
    if len(dims) != 3:
        return None
    return inputs[0] if 3 in (dims[0].dim_value, dims[2].dim_value) else None


BATCH_SQUEEZE = "__squeeze"  # the name of the copy's first node: <input name>__squeeze


def is_batch_axis_copy(model: onnx.ModelProto) -> bool:
    """Whether `model` is a copy `add_batch_axis` made (its first node squeezes the batch axis
    off its input): a torchvision-style export, one image in."""
    if not model.graph.node or not model.graph.input:
        return False
    first = model.graph.node[0]
    return first.op_type == "Squeeze" and first.name == f"{first.input[0]}{BATCH_SQUEEZE}"


def add_batch_axis(model: onnx.ModelProto) -> bool:
    """Give the model's unbatched image input a batch axis of 1, in place; whether it did."""
    vi = unbatched_image_input(model)
    if vi is None:
        return False
    graph, name = model.graph, vi.name
    inner = f"{name}__unbatched"
    rename_reads(graph, name, inner)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset >= 13:  # Squeeze takes its axes as an input from opset 13
        axes = f"{name}__batch_axis"
        graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), axes))
        squeeze = helper.make_node("Squeeze", [name, axes], [inner], name=name + BATCH_SQUEEZE)
    else:
        squeeze = helper.make_node("Squeeze", [name], [inner], name=name + BATCH_SQUEEZE, axes=[0])
    graph.node.insert(0, squeeze)
    dims = [onnx.TensorShapeProto.Dimension(dim_value=1)]
    for d in _dims(vi):
        dims.append(onnx.TensorShapeProto.Dimension())
        dims[-1].CopyFrom(d)
    vi.type.tensor_type.shape.ClearField("dim")
    vi.type.tensor_type.shape.dim.extend(dims)
    return True
