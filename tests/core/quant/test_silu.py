"""SiLU fusion (`app.core.quant.silu`): on YOLOX-Nano's real float graph it replaces every
x * sigmoid(x) and changes no output; gates and shared sigmoids are left alone."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from app.core.quant.silu import fuse_silus, silu_pairs
from tests.assets import IMAGES, YOLOX_ONNX, needs_assets


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


@needs_assets
def test_fusing_yolox_silus_changes_no_output():
    import cv2

    model = onnx.load(str(YOLOX_ONNX))
    before = onnx.ModelProto.FromString(model.SerializeToString())
    sigmoids = [n.op_type for n in model.graph.node].count("Sigmoid")
    assert len(silu_pairs(model)) == 104
    assert fuse_silus(model) == 104
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    # the head's objectness and class sigmoids are not SiLUs and stay
    assert ops.count("Sigmoid") == sigmoids - 104 > 0 and ops.count("QuickGelu") == 104
    photo = sorted((IMAGES / "coco-val-dev64" / "images").glob("*.jpg"))[0]
    img = cv2.resize(cv2.imread(str(photo)), (416, 416)).astype(np.float32)
    x = np.ascontiguousarray(img.transpose(2, 0, 1)[None])
    (want,), (got,) = _run(before, x), _run(model, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _graph(nodes, extra_outputs=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    outs = [y] + [
        helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, 4]) for o in extra_outputs
    ]
    return helper.make_model(
        helper.make_graph(nodes, "g", [x], outs),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )


def test_a_gate_and_a_shared_sigmoid_are_not_silus():
    gate = _graph(
        [
            helper.make_node("Neg", ["x"], ["z"], name="neg"),
            helper.make_node("Sigmoid", ["z"], ["s"], name="sig"),
            helper.make_node("Mul", ["x", "s"], ["y"], name="mul"),
        ]
    )
    assert silu_pairs(gate) == [] and fuse_silus(gate) == 0
    shared = _graph(
        [
            helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
            helper.make_node("Mul", ["x", "s"], ["y"], name="mul"),
        ],
        extra_outputs=["s"],
    )
    assert fuse_silus(shared) == 0


def test_a_silu_reading_two_copies_of_one_dequantized_tensor_is_fused():
    scale = helper.make_tensor("sc", TensorProto.FLOAT, [], [0.05])
    zero = helper.make_tensor("zp", TensorProto.UINT8, [], [128])
    model = _graph(
        [
            helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["q"], name="q"),
            helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["d1"], name="dq1"),
            helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["d2"], name="dq2"),
            helper.make_node("Sigmoid", ["d1"], ["s"], name="sig"),
            helper.make_node("Mul", ["d2", "s"], ["y"], name="mul"),
        ]
    )
    model.graph.initializer.extend([scale, zero])
    x = np.linspace(-5, 5, 4, dtype=np.float32)[None]
    (want,) = _run(model, x)
    assert fuse_silus(model) == 1
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["QuantizeLinear", "DequantizeLinear", "QuickGelu"]  # the unread copy dropped
    (got,) = _run(model, x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
