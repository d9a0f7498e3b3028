"""Floors under calibrated ranges (`app.core.quant.range_floors`, issue 17). On the real
YOLOX-Nano: the conv outputs only a SiLU reads get the SiLU floor in the uint8 grids of the
ort-cpu graph and nowhere else, which brings that graph closer to FP32. On the real HaGRID crop
classifier: the conv output before its residual Add + Relu gets minus the skip branch's maximum,
which changes no float output and brings INT8 much closer to FP32."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.quant.calibration import latest_calibration
from app.core.quant.quantize import make_int8
from app.core.quant.range_floors import SILU_FLOOR, add_relu_floors, floored, silu_only_inputs
from app.core.quant.ranges import read_ranges
from tests.assets import HAGRID, IMAGES, YOLOX, YOLOX_ONNX, needs_assets
from tests.workspaces import minmax_workspace


def test_floor_moves_only_ranges_that_reach_below_it():
    ranges = {"wide": (-30.0, 5.0), "narrow": (-3.0, 5.0), "below": (-20.0, -9.0), "x": (-9, 1)}
    names = ["wide", "narrow", "below", "missing"]
    assert floored(ranges, dict.fromkeys(names, SILU_FLOOR)) == {"wide": SILU_FLOOR}
    # SiLU(SILU_FLOOR) is within a few thousandths of 0: less than a tenth of an output step
    assert abs(SILU_FLOOR / (1 + np.exp(-SILU_FLOOR))) < 0.003


def test_a_clip_after_the_add_floors_at_its_minimum_and_a_shared_input_is_left_alone():
    """Add(t, u) -> Clip(min 1, max 6): below 1 - max(u), t only ever gives 1. `u` is also a
    graph output, so it gets no floor (its range serves another reader)."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    u_out = helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Neg", ["x"], ["t"]),
        helper.make_node("Abs", ["x"], ["u"]),
        helper.make_node("Add", ["t", "u"], ["s"]),
        helper.make_node("Clip", ["s", "lo", "hi"], ["y"]),
    ]
    bounds = [
        helper.make_tensor("lo", onnx.TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("hi", onnx.TensorProto.FLOAT, [], [6.0]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y, u_out], bounds))
    ranges = {"t": (-20.0, 5.0), "u": (0.0, 2.5)}
    assert add_relu_floors(model, ranges) == {"t": -1.5}
    assert floored(ranges, add_relu_floors(model, ranges)) == {"t": -1.5}


def test_an_add_of_a_constant_before_a_relu_floors_at_minus_its_largest_value():
    """Add(t, bias) -> Relu, the bias a per-channel constant: below -max(bias), t only gives 0."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 2, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 2, 2])
    bias = numpy_helper.from_array(np.array([0.5, -1.0, 2.0], np.float32).reshape(1, 3, 1, 1), "b")
    nodes = [
        helper.make_node("Neg", ["x"], ["t"]),
        helper.make_node("Add", ["t", "b"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [bias]))
    ranges = {"t": (-20.0, 5.0)}
    assert add_relu_floors(model, ranges) == {"t": -2.0}  # the constant itself gets none
    # exact: t clipped at the floor gives the same output whatever t is
    t = np.random.default_rng(0).normal(0, 8, (1000, 3, 1, 1)).astype(np.float32)
    b = numpy_helper.to_array(bias)
    np.testing.assert_array_equal(np.maximum(np.maximum(t, -2.0) + b, 0), np.maximum(t + b, 0))


@needs_assets
def test_yolox_silu_inputs_are_its_conv_outputs_and_a_second_reader_excludes_one():
    model = onnx.load(str(YOLOX_ONNX))
    found = silu_only_inputs(model)
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert len(found) == 104 and {producers[t] for t in found} == {"Conv"}
    # a model this was not tuned on: the same graph with one pre-SiLU tensor also an output
    model.graph.output.append(helper.make_empty_tensor_value_info(found[0]))
    assert found[0] not in silu_only_inputs(model) and len(silu_only_inputs(model)) == 103


@pytest.fixture(scope="module")
def yolox_ws(tmp_path_factory):
    return minmax_workspace(tmp_path_factory, inspect_model(YOLOX), 8)


def _grids(path) -> dict[str, tuple[float, int]]:
    """{quantized tensor: (scale, zero point)} of a Q/DQ graph's QuantizeLinear nodes."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.input[0]: (float(inits[n.input[1]]), int(inits[n.input[2]]))
        for n in model.graph.node
        if n.op_type == "QuantizeLinear"
    }


def _run(path, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()  # fake-quant math, no fused kernels: the graph as written
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)


def _sqnr_gain(spec, on, off, files) -> float:
    """How much closer to FP32's first output (dB) graph `on` comes than graph `off` on `files`."""
    pre = Preprocessor(spec.preprocess)
    err = {on: 0.0, off: 0.0}
    for f in files:
        x = np.array(pre(read_image(f))[0], copy=True)
        ref = _run(spec.path, x)
        for path in err:
            err[path] += ((_run(path, x) - ref) ** 2).sum()
    return float(10 * np.log10(err[off] / err[on]))


@needs_assets
def test_ort_cpu_int8_takes_the_floor_into_its_grids_and_comes_closer_to_fp32(yolox_ws):
    spec = yolox_ws.spec()
    ranges_path = latest_calibration(yolox_ws) / "ranges.json"
    _, ranges = read_ranges(ranges_path)
    on, off = yolox_ws.path("floor.onnx"), yolox_ws.path("nofloor.onnx")
    meta = make_int8(spec.path, ranges_path, on, "ort-cpu")
    make_int8(spec.path, ranges_path, off, "ort-cpu", range_floors=False)
    want = floored(ranges, dict.fromkeys(silu_only_inputs(onnx.load(spec.path)), SILU_FLOOR))
    assert meta["range_floors"]["silu_floored"] == len(want) > 0
    assert meta["range_floors"]["add_relu_floored"] == 0  # no Relu after YOLOX-Nano's adds
    grids, before = _grids(on), _grids(off)
    checked = 0
    for tensor, lo in want.items():
        if tensor not in grids:  # the output of a conv the recipe keeps float
            continue
        scale, zero = grids[tensor]
        hi = ranges[tensor][1]
        assert scale == pytest.approx((hi - lo) / 255, rel=1e-5)
        assert zero == round(-lo / scale) and scale < before[tensor][0]
        checked += 1
    assert checked >= 50
    # every other tensor keeps its grid
    assert all(grids[t] == before[t] for t in grids if t not in want)
    # the TensorRT layout keeps its conv outputs float: no floor, no change
    assert "range_floors" not in make_int8(
        spec.path, ranges_path, yolox_ws.path("t.onnx"), "tensorrt"
    )

    files = sorted((IMAGES / "photos-misc103").glob("*.jpg"))[:4]
    gain = _sqnr_gain(spec, on, off, files)
    assert gain > 0.5, f"output SQNR gain from the floor {gain:.2f} dB"


CROPS = HAGRID.parent / "crops_classifier.onnx"


@pytest.fixture(scope="module")
def crops_ws(tmp_path_factory):
    return minmax_workspace(tmp_path_factory, inspect_model(CROPS), 8)


def test_residual_add_floor_is_minus_the_skip_maximum_and_changes_no_float_output(crops_ws):
    spec = crops_ws.spec()
    model = onnx.load(spec.path)
    _, ranges = read_ranges(latest_calibration(crops_ws) / "ranges.json")
    floors = add_relu_floors(model, ranges)
    add = next(n for n in model.graph.node if n.op_type == "Add")
    assert set(floors) == set(add.input)  # both branches are conv outputs only the Add reads
    for t in add.input:
        other = next(u for u in add.input if u != t)
        assert floors[t] == -ranges[other][1]
    assert floored(ranges, floors)  # the block's conv reaches far below: [-75, 15] here
    # exact: the float graph with those tensors clipped at their floors gives the same output
    # on the calibration photos (MinMax: the skip branch stays under its calibrated maximum)
    clipped = onnx.load(spec.path)
    for i, node in enumerate(list(clipped.graph.node)):
        if node.op_type == "Add":
            for j, t in enumerate(node.input):
                low = helper.make_tensor(f"floor{j}", onnx.TensorProto.FLOAT, [], [floors[t]])
                clipped.graph.initializer.append(low)
                clipped.graph.node.insert(i, helper.make_node("Max", [t, low.name], [f"{t}_c"]))
                node.input[j] = f"{t}_c"
            break
    pre = Preprocessor(spec.preprocess)
    photos = sorted((IMAGES / "coco-train128" / "images").glob("*.jpg"))[:8]
    a = ort.InferenceSession(spec.path, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(clipped.SerializeToString(), providers=["CPUExecutionProvider"])
    for f in photos:
        x = np.array(pre(read_image(f))[0], copy=True)
        want, got = a.run(None, {"input": x})[0], b.run(None, {"input": x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_residual_add_floor_brings_the_crop_classifier_closer_to_fp32(crops_ws):
    spec = crops_ws.spec()
    ranges_path = latest_calibration(crops_ws) / "ranges.json"
    on, off = crops_ws.path("floors.onnx"), crops_ws.path("nofloors.onnx")
    meta = make_int8(spec.path, ranges_path, on, "ort-cpu")
    make_int8(spec.path, ranges_path, off, "ort-cpu", range_floors=False)
    assert meta["range_floors"]["add_relu_floored"] >= 1
    files = sorted((IMAGES / "photos-misc103").glob("*.jpg"))[:16]  # not calibrated on
    gain = _sqnr_gain(spec, on, off, files)
    assert gain > 3.0, f"logit SQNR gain from the residual-add floor {gain:.2f} dB"
