"""Colour frames into a one-channel (grayscale) model: the copy takes RGB and converts it to gray
as its first node.

Every step of the app feeds 3-channel frames (preprocessing, calibration, the fused uint8 input,
TensorRT profiles). A grayscale model (inspection, OCR, medical, MNIST-like) gets a copy whose
input takes `[N, 3, H, W]` (or `[N, H, W, 3]`) RGB and whose first node is a 1x1 convolution
(a MatMul for NHWC) with ITU-R BT.601's luma weights 0.299, 0.587, 0.114, what OpenCV's
BGR2GRAY computes. The weights sum to 1, so a normalisation with the same mean and std on every
channel commutes with it: the pixels the model sees are the gray frame normalised as before.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from app.core.model.graph_inputs import data_inputs, rename_reads

LUMA_RGB = np.array([0.299, 0.587, 0.114], np.float32)
TO_GRAY = "__to_gray"  # the converting node's name: `<input>__to_gray`


def is_gray_copy(model: onnx.ModelProto, input_name: str) -> bool:
    """Whether `model` is a copy `add_color_input` made (its first node converts to gray)."""
    return bool(model.graph.node) and model.graph.node[0].name == f"{input_name}{TO_GRAY}"


def gray_image_input(model: onnx.ModelProto) -> tuple[onnx.ValueInfoProto, str] | None:
    """(the model's one input, its layout) when it is a float or uint8 4-D image with one
    channel (`[N, 1, H, W]` or `[N, H, W, 1]`); None otherwise."""
    inputs = data_inputs(model)
    if len(inputs) != 1:
        return None
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value for d in tensor.shape.dim]
    if tensor.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8) or len(dims) != 4:
        return None
    if dims[1] == 1 and dims[3] != 1:
        return inputs[0], "NCHW"
    if dims[3] == 1 and dims[1] != 1:
        return inputs[0], "NHWC"
    return None


def add_color_input(model: onnx.ModelProto) -> bool:
    """Make the model's one-channel float image input take RGB, in place; whether it did."""
    found = gray_image_input(model)
    if found is None or found[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        return False  # (a uint8 one is refused: its conversion would need rounding back)
    vi, layout = found
    graph, name = model.graph, vi.name
    inner = f"{name}__gray"
    rename_reads(graph, name, inner)
    luma = f"{name}__luma_weights"
    if layout == "NCHW":
        graph.initializer.append(numpy_helper.from_array(LUMA_RGB.reshape(1, 3, 1, 1), luma))
        node = helper.make_node("Conv", [name, luma], [inner], name=f"{name}{TO_GRAY}")
        channel = 1
    else:
        graph.initializer.append(numpy_helper.from_array(LUMA_RGB.reshape(3, 1), luma))
        node = helper.make_node("MatMul", [name, luma], [inner], name=f"{name}{TO_GRAY}")
        channel = 3
    graph.node.insert(0, node)
    vi.type.tensor_type.shape.dim[channel].dim_value = 3
    return True
