"""Small, real-but-unusual ONNX files made on the fly for bad-input tests (no binaries in git)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def text_model(path: Path) -> Path:
    """A valid ONNX model that is not a vision model: one [1, 16] input, one MatMul."""
    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    x = helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["tokens", "w"], ["y"])], "g", [x], [y], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return save(model, path)


def tiny_classifier(path: Path, classes: int = 3, external_location: str | None = None) -> Path:
    """A real 4-D image classifier: global average pool + Gemm to `classes` logits."""
    w = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(classes, 3)).astype(np.float32), "w"
    )
    if external_location is not None:
        w.data_location = TensorProto.EXTERNAL
        entry = w.external_data.add()
        entry.key, entry.value = "location", external_location
        w.ClearField("raw_data")
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return save(model, path)
