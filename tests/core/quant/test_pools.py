"""Average pools that narrow their range stay float in the ort-cpu INT8 graph (`app.core.quant
.pools`): checked on the real CIFAR-10 ResNet-8, whose global pool averages its input's peaks
away, and on a graph built here with a pool that does not narrow."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.quant.calibration import latest_calibration
from app.core.quant.pools import narrowing_pools
from app.core.quant.quantize import make_int8
from app.core.quant.ranges import read_ranges
from app.core.quant.recipe import float_summary
from tests.assets import CIFAR, needs_assets
from tests.workspaces import resnet8_int8_workspace


def _pool_graph(kernel: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    pool = helper.make_node(
        "AveragePool",
        ["x"],
        ["y"],
        name="pool",
        kernel_shape=[kernel, kernel],
        strides=[kernel] * 2,
    )
    return helper.make_model(helper.make_graph([pool], "g", [x], [y]))


def test_only_a_pool_whose_output_range_is_at_most_half_its_input_s_stays_float():
    model = _pool_graph(8)
    assert narrowing_pools(model, {"x": (0.0, 6.0), "y": (0.0, 3.0)}) == ["pool"]
    assert narrowing_pools(model, {"x": (0.0, 6.0), "y": (0.0, 3.5)}) == []
    # without both ranges the quantizer's own rule applies
    assert narrowing_pools(model, {"x": (0.0, 6.0)}) == []
    assert narrowing_pools(_pool_graph(2), {"x": (0.0, 6.0), "y": (-1.0, 6.0)}) == []


@pytest.fixture(scope="module")
def resnet8(tmp_path_factory):
    return resnet8_int8_workspace(tmp_path_factory.mktemp("r8"), per_class=3)


def _grids(path) -> dict[str, float]:
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.input[0]: float(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear"
    }


@needs_assets
def test_resnet8_global_pool_stays_float_and_its_classifier_reads_its_own_range(resnet8):
    spec = resnet8.spec()
    ranges_path = latest_calibration(resnet8) / "ranges.json"
    meta = resnet8.variant_meta("int8")
    model = onnx.load(spec.path)
    pool = next(n for n in model.graph.node if n.op_type == "AveragePool")
    assert meta["pools_float"] == [pool.name]
    assert "; 1 average pool(s) float" in float_summary(meta)  # the line the CLI and GUI show
    grids = _grids(resnet8.variant_path("int8"))
    _, ranges = read_ranges(ranges_path)
    # the pool's output is no longer quantized on its input's grid; the classifier's input is
    # quantized on the range calibrated for it, narrower than the pool input's
    assert pool.output[0] not in grids and pool.input[0] in grids
    reader = next(n for n in model.graph.node if pool.output[0] in n.input)
    head_in = reader.output[0] if reader.op_type in ("Flatten", "Reshape") else pool.output[0]
    lo, hi = ranges[head_in]
    assert grids[head_in] == pytest.approx((hi - lo) / 255, rel=1e-5)
    assert grids[head_in] < 0.5 * grids[pool.input[0]]

    shared = resnet8.path("pools-quantized.onnx")
    assert "pools_float" not in make_int8(
        spec.path, ranges_path, shared, "ort-cpu", float_pools=False
    )
    assert pool.output[0] in _grids(shared)
    pre = Preprocessor(spec.preprocess)
    files = sorted(CIFAR.rglob("*.jpg"))[1::10]  # 50 images, not the calibration ones
    sessions = {
        k: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        for k, p in (
            ("fp32", spec.path),
            ("int8", resnet8.variant_path("int8")),
            ("shared", shared),
        )
    }
    err = {"int8": 0.0, "shared": 0.0}
    for f in files:
        x = np.array(pre(read_image(f))[0], copy=True)
        ref = sessions["fp32"].run(None, {spec.input_name: x})[0].astype(np.float64)
        for k in err:
            out = sessions[k].run(None, {spec.input_name: x})[0].astype(np.float64)
            err[k] += ((out - ref) ** 2).sum()
    gain = 10 * np.log10(err["shared"] / err["int8"])
    assert gain > 1.0, f"logit SQNR gain from the float pool {gain:.2f} dB"
