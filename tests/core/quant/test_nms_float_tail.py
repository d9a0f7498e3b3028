"""On a model with NMS inside the graph (the end-to-end layout of the real YOLOX-Nano), decoding,
box arithmetic, NonMaxSuppression, TopK and the Gathers on kept indices stay float in both INT8
graphs and in FP16, and calibration collects ranges only for the compute part before them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.backends.onnxrt import OrtRunner
from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.fp16 import half_before_tail
from app.core.quant.graph_rules import float_tail_nodes, name_nodes, tail_tensors
from app.core.quant.quantize import quantize
from app.core.quant.ranges import tensors_for_target
from tests.assets import COCO_DEV64, needs_assets
from tests.core.model.derived_layouts import build_layout
from tests.workspaces import copy_photos

pytestmark = needs_assets
QDQ = {"QuantizeLinear", "DequantizeLinear"}
TAIL_OPS = {"NonMaxSuppression", "TopK", "Gather", "Exp", "Add", "Sub", "Mul", "ReduceMax"}


@pytest.fixture(scope="module")
def nms_ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("end2end")
    spec = inspect_model(build_layout("end2end", root / "yolox_end2end.onnx"))
    ws = Workspace.for_model(spec, root / "ws")
    images = root / "calib"
    images.mkdir()
    copy_photos(images, 4)
    calibration = calibrate(ws, images, method="minmax")
    return ws, calibration


def _tail(ws) -> tuple[set[str], onnx.ModelProto]:
    """Tensors the FP32 model's float tail writes (names the quantized graphs keep)."""
    model = name_nodes(onnx.load(ws.spec().path))
    tail = tail_tensors(model)
    ops = {n.op_type for n in model.graph.node if n.name in set(float_tail_nodes(model))}
    assert ops >= TAIL_OPS, ops  # the test is about a real decode + NMS tail
    return tail, model


def test_calibration_collects_only_the_compute_part(nms_ws):
    ws, calibration = nms_ws
    tail, model = _tail(ws)
    collected = set(json.loads(calibration.ranges_path.read_text())["data"])
    every = set(tensors_for_target(ws.spec().path))
    assert every & tail, "ORT's own selection includes the tail (what this restriction is for)"
    assert collected and not collected & tail, sorted(collected & tail)[:5]
    conv_inputs = {n.input[0] for n in model.graph.node if n.op_type == "Conv"}
    assert conv_inputs & every <= collected  # every conv input that ORT selects keeps its range


@pytest.mark.parametrize("target", ["ort-cpu", "tensorrt"])
def test_int8_graphs_keep_decode_and_nms_float(nms_ws, target):
    ws, _ = nms_ws
    tail, _ = _tail(ws)
    meta = quantize(ws, precisions=["int8"], target=target)[0]
    model = onnx.load(str(ws.variant_path(meta["name"])))
    producers = {o: n for n in model.graph.node for o in n.output}
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) > 50
    tail_nodes = [n for n in model.graph.node if set(n.output) & tail]
    assert {"NonMaxSuppression", "TopK"} <= {n.op_type for n in tail_nodes}
    for node in tail_nodes:
        fed_by = {producers[i].op_type for i in node.input if i in producers}
        assert not fed_by & QDQ, (target, node.op_type, node.name, "reads a Q/DQ output")
    for node in model.graph.node:
        if node.op_type in QDQ:
            assert not set(node.input) & tail, (target, node.name, "quantizes a tail tensor")


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    typed = onnx.shape_inference.infer_shapes(model)
    values = (*typed.graph.input, *typed.graph.value_info, *typed.graph.output)
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    return types


def test_fp16_keeps_decode_and_nms_in_float32_and_finds_what_fp32_finds(nms_ws):
    ws, _ = nms_ws
    tail, _ = _tail(ws)
    quantize(ws, precisions=["fp16"])
    path = ws.variant_path("fp16")
    model = onnx.load(str(path))
    types = _elem_types(model)
    # decode, class offsets, NMS and what follows it; the sigmoids and reshapes before them
    # may stay FP16 (a raw YOLOX head's tail does, as before)
    math = [n for n in model.graph.node if set(n.output) & tail and n.op_type in TAIL_OPS]
    assert {n.op_type for n in math} >= TAIL_OPS
    for node in math:
        for name in (*node.input, *node.output):
            assert types.get(name) != TensorProto.FLOAT16, (node.op_type, node.name, name)
    assert sum(t == TensorProto.FLOAT16 for t in types.values()) > 100  # the body is FP16
    # Class-aware NMS offsets boxes by class * 4096; in FP16 classes >= 16 overflowed to inf
    # and NMS kept near-duplicates. Same photos, same detections now.
    spec = ws.spec()
    counts = []
    for variant in (spec.path, path):
        found = []
        with OrtRunner(variant) as runner:
            for photo in sorted((COCO_DEV64 / "images").glob("*.jpg"))[:6]:
                d = FramePipeline(spec, runner).process(read_image(photo)).detections
                found += sorted(int(c) for c in d.class_ids[d.scores > 0.25])
        counts.append(found)
    assert any(c >= 16 for c in counts[0]), "the photos must exercise the overflowing classes"
    assert counts[0] == counts[1]


def test_a_constant_shared_by_body_and_tail_stays_float32_in_the_tail():
    """FP16 of body and tail sharing one constant: the tail gets an FP32 copy under its own
    name, and what crosses from the body to the tail is FP32."""
    scale = numpy_helper.from_array(np.array(70000.0, np.float32), "big")  # > FP16's 65504
    weight = numpy_helper.from_array(np.full((1, 1, 1, 1), 1e-4, np.float32), "w")
    nodes = [
        helper.make_node("Mul", ["x", "big"], ["scaled"], name="pre"),
        helper.make_node("Conv", ["scaled", "w"], ["conv"], name="conv"),
        helper.make_node("Mul", ["conv", "big"], ["y"], name="tail_mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])],
        [scale, weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    half, kept = half_before_tail(name_nodes(model))
    onnx.checker.check_model(half)
    assert kept == 1
    tail_mul = next(n for n in half.graph.node if n.name == "tail_mul")
    inits = {i.name: i.data_type for i in half.graph.initializer}
    assert inits["big"] == TensorProto.FLOAT16  # the body's use (clipped, as before)
    assert inits[tail_mul.input[1]] == TensorProto.FLOAT and tail_mul.input[1] != "big"
    assert _elem_types(half)[tail_mul.input[0]] == TensorProto.FLOAT
    x = np.full((1, 1, 2, 2), 0.5, np.float32)
    sess = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x})[0]
    assert np.isfinite(y).all() and np.allclose(y, 0.5 * 65504 * 1e-4 * 70000, rtol=1e-2)


def test_fp16_keeps_a_constant_graph_output(tmp_path):
    """The HaGRID hand detector's `labels` output is an initializer, not a node's output: the
    split FP16 graph must still hold it (it was dropped, and the checker refused the graph)."""
    from app.core.quant.fp16 import make_fp16
    from tests.assets import HAGRID, IMAGES

    out = tmp_path / "fp16.onnx"
    make_fp16(HAGRID, out)
    spec = inspect_model(HAGRID)
    frame = read_image(sorted((IMAGES / "gesture-frames").glob("*.jpg"))[0])
    found = []
    for variant in (HAGRID, out):
        with OrtRunner(variant) as runner:
            found.append(FramePipeline(spec, runner).process(frame).detections)
    ref, half = found
    assert len(ref.boxes) and len(half.boxes) == len(ref.boxes)
    assert np.abs(half.boxes - ref.boxes).max() < 2.0  # pixels
    assert list(half.class_ids) == list(ref.class_ids)
