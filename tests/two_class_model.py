"""A real two-class ONNX classifier (average colour -> notperson/person), built in a test's
folder: the assets hold no model with fewer than five classes, and top-k display must cope."""

from __future__ import annotations

from pathlib import Path

LABELS = ["notperson", "person"]


def two_class_model(folder: Path) -> Path:
    """Write two.onnx ([1,3,32,32] -> softmax over 2) and labels.txt; returns the folder."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w = np.array([[0.02, -0.02], [0.0, 0.0], [-0.02, 0.02]], np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "two_class",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(2, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(folder / "two.onnx"))
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return folder
