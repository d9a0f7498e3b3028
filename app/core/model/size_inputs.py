"""Size inputs computed from the image itself: PaddleDetection's `im_shape` and `scale_factor`,
RT-DETR's `orig_target_sizes`.

Such exports take, beside the image, the size of the picture it was resized from, and scale their
boxes back to it inside the graph. The app maps boxes back to the frame itself (it knows the
resize it made), as it does for every other detector, so the copy `adapt` writes computes these
inputs from the image input: the network input's own height and width, and a scale of 1. Boxes
then come out in input pixels, and each input's name keeps meaning what the exporter meant:
  * `im_shape` [N, 2]: (height, width) of the network input;
  * `scale_factor` [N, 2]: (scale_y, scale_x) from the original picture to the input: 1, 1;
  * `orig_target_sizes` [N, 2]: (width, height) RT-DETR multiplies its 0..1 boxes by.
Recognised by these names and a last axis of 2 only: any other extra input still refuses the
model, with its names. No library feeds an input from another one inside an ONNX graph, so the
few nodes (Shape, Gather, Cast, Expand) are written here.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from app.core.model.graph_inputs import data_inputs

# name -> what it holds: the input's (height, width), (width, height), or ones
SIZE_INPUTS = {"im_shape": "hw", "scale_factor": "ones", "orig_target_sizes": "wh"}


def _rank(vi: onnx.ValueInfoProto) -> int:
    return len(vi.type.tensor_type.shape.dim)


def _last_dim(vi: onnx.ValueInfoProto) -> int | None:
    dims = vi.type.tensor_type.shape.dim
    return dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None


def size_inputs(
    model: onnx.ModelProto,
) -> tuple[onnx.ValueInfoProto | None, list[onnx.ValueInfoProto]]:
    """(the image input, the size inputs beside it) when the model takes one 4-D image and
    every other input is a known size input ([N, 2] or [2]); (None, []) otherwise."""
    inputs = data_inputs(model)
    images = [vi for vi in inputs if _rank(vi) == 4]
    extra = [vi for vi in inputs if _rank(vi) != 4]
    if len(images) != 1 or not extra:
        return None, []
    known = all(
        vi.name in SIZE_INPUTS and _rank(vi) in (1, 2) and _last_dim(vi) in (2, None)
        for vi in extra
    )
    return (images[0], extra) if known else (None, [])


def feed_size_inputs(model: onnx.ModelProto) -> list[str]:
    """Compute the model's size inputs from its image input, in place (see the module doc); the
    names of the inputs it replaced (none when the model has no such inputs)."""
    image, extra = size_inputs(model)
    if image is None:
        return []
    graph = model.graph
    dims = image.type.tensor_type.shape.dim
    nhwc = dims[3].dim_value == 3 and dims[1].dim_value != 3
    h, w = (1, 2) if nhwc else (2, 3)
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        full = f"{image.name}__{name}"
        graph.initializer.append(numpy_helper.from_array(value, full))
        return full

    def node(op: str, inputs: list[str], out: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    shape = node("Shape", [image.name], f"{image.name}__shape")
    vectors = {
        "hw": node("Gather", [shape, const("hw_axes", np.array([h, w], np.int64))], shape + "_hw"),
        "wh": node("Gather", [shape, const("wh_axes", np.array([w, h], np.int64))], shape + "_wh"),
    }
    vectors["ones"] = node("Div", [vectors["hw"], vectors["hw"]], shape + "_ones")
    batch = node("Gather", [shape, const("batch_axis", np.array([0], np.int64))], shape + "_n")
    pair = const("pair", np.array([2], np.int64))
    for vi in extra:
        cast = node(
            "Cast",
            [vectors[SIZE_INPUTS[vi.name]]],
            f"{vi.name}__value",
            to=vi.type.tensor_type.elem_type,
        )
        if _rank(vi) == 1:
            node("Identity", [cast], vi.name)
            continue
        row_shape = const(f"{vi.name}_row", np.array([1, 2], np.int64))
        row = node("Reshape", [cast, row_shape], f"{vi.name}__row")
        rows = node("Concat", [batch, pair], f"{vi.name}__rows", axis=0)
        node("Expand", [row, rows], vi.name)  # one (equal) row per image of the batch
    for i, n in enumerate(nodes):
        graph.node.insert(i, n)
    for vi in extra:
        graph.input.remove(vi)
    return [vi.name for vi in extra]
