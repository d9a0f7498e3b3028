"""The floor under SiLU inputs' ranges (`app.core.quant.silu_ranges`, issue 17) on the real
YOLOX-Nano: it finds the conv outputs only a SiLU reads, puts the floor into the uint8 grids of
the ort-cpu graph and nowhere else, and brings that graph's output closer to FP32's."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnxruntime.quantization.calibrate import load_tensors_data

from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.quant.calibration import latest_calibration
from app.core.quant.quantize import make_int8
from app.core.quant.silu_ranges import FLOOR, floored, silu_only_inputs
from tests.assets import IMAGES, YOLOX, YOLOX_ONNX, needs_assets
from tests.workspaces import minmax_workspace


def test_floor_moves_only_ranges_that_reach_below_it():
    ranges = {"wide": (-30.0, 5.0), "narrow": (-3.0, 5.0), "below": (-20.0, -9.0), "x": (-9, 1)}
    assert floored(ranges, ["wide", "narrow", "below", "missing"]) == {"wide": FLOOR}
    # SiLU(FLOOR) is within a few thousandths of 0: the clip costs less than a tenth of a step
    assert abs(FLOOR / (1 + np.exp(-FLOOR))) < 0.003


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


@needs_assets
def test_ort_cpu_int8_takes_the_floor_into_its_grids_and_comes_closer_to_fp32(yolox_ws):
    spec = yolox_ws.spec()
    ranges_path = latest_calibration(yolox_ws) / "ranges.json"
    ranges = {
        k: (float(np.asarray(v.range_value[0])), float(np.asarray(v.range_value[1])))
        for k, v in load_tensors_data(ranges_path).items()
    }
    on, off = yolox_ws.path("floor.onnx"), yolox_ws.path("nofloor.onnx")
    meta = make_int8(spec.path, ranges_path, on, "ort-cpu")
    make_int8(spec.path, ranges_path, off, "ort-cpu", silu_floor=False)
    want = floored(ranges, silu_only_inputs(onnx.load(spec.path)))
    assert meta["silu_floor"]["floored"] == len(want) > 0
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
    assert "silu_floor" not in make_int8(
        spec.path, ranges_path, yolox_ws.path("t.onnx"), "tensorrt"
    )

    pre = Preprocessor(spec.preprocess)
    files = sorted((IMAGES / "photos-misc103").glob("*.jpg"))[:4]
    err = {"on": 0.0, "off": 0.0}
    for f in files:
        x = np.array(pre(read_image(f))[0], copy=True)
        ref = _run(spec.path, x)
        for key, path in (("on", on), ("off", off)):
            err[key] += ((_run(path, x) - ref) ** 2).sum()
    gain = 10 * np.log10(err["off"] / err["on"])
    assert gain > 0.5, f"output SQNR gain from the floor {gain:.2f} dB"
