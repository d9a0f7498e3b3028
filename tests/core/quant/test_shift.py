"""Activation shifting for the TensorRT layout (issue 17) on the real YOLOX-Nano: conv inputs
are quantized as x - c on the whole symmetric int8 grid, with c folded into the conv's bias and
an explicit Pad of -c where the conv pads. Checked here: the float graph is unchanged by it
(borders included), the Q/DQ graph keeps TensorRT's zero points of 0, its bias folding is exact
for the rounded weights (the same grid put on the unshifted tensors with a zero point gives the
same output), and it brings INT8's output closer to FP32's on real photos."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.quant.block_sensitivity import qdq_params
from app.core.quant.calibration import latest_calibration
from app.core.quant.graph_rules import MIN_QDQ_OPSET, compute_nodes, name_nodes, raise_opset
from app.core.quant.prepare import prepare_for_quantization
from app.core.quant.quantize import make_int8, quantize
from app.core.quant.shift import shift_for_int8, shift_origins, unshifted
from tests.assets import IMAGES, YOLOX, needs_assets
from tests.workspaces import minmax_workspace

pytestmark = needs_assets


@pytest.fixture(scope="module")
def yolox_ws(tmp_path_factory):
    return minmax_workspace(tmp_path_factory, inspect_model(YOLOX), 8)


@pytest.fixture(scope="module")
def photos(yolox_ws):
    pre = Preprocessor(yolox_ws.spec().preprocess)
    files = sorted((IMAGES / "photos-misc103").glob("*.jpg"))[:4]
    return [np.array(pre(read_image(f))[0], copy=True) for f in files]


def _run(model, x: np.ndarray, exact: bool = True) -> np.ndarray:
    """The first output; `exact`: Q/DQ as fake-quant math, no fused integer kernels."""
    opts = ort.SessionOptions()
    if exact:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)


def _sqnr(ref: np.ndarray, out: np.ndarray) -> float:
    return float(10 * np.log10((ref**2).sum() / max(((out - ref) ** 2).sum(), 1e-30)))


def test_shifting_changes_no_float_output_even_at_the_borders(yolox_ws, photos, tmp_path):
    spec = yolox_ws.spec()
    model = name_nodes(raise_opset(onnx.load(spec.path), MIN_QDQ_OPSET))
    model, _ = prepare_for_quantization(model, workdir=tmp_path)
    model = name_nodes(model)
    ranges = latest_calibration(yolox_ws) / "ranges.json"
    shifted, new_ranges, info = shift_for_int8(model, ranges, set(compute_nodes(model)), tmp_path)
    # YOLOX-Nano: SiLU outputs ([-0.28, max]) feed nearly every conv; the depthwise 3x3 convs pad
    assert info["convs"] >= 100 and info["padded"] >= 20, info
    assert new_ranges != ranges and len(shift_origins(shifted)) == info["tensors"] + info["padded"]
    for x in photos[:2]:
        ref, out = _run(model, x, exact=False), _run(shifted, x, exact=False)
        # float32 cancellation only (x - c, then + c * sum(W) in the bias): about 80 dB; padded
        # with 0 instead of -c, the borders alone would be off by c * sum(W) over the pad taps
        assert _sqnr(ref, out) >= 60.0, _sqnr(ref, out)


def test_shifted_int8_trt_keeps_zero_points_of_zero_and_halves_the_scales(yolox_ws):
    quantize(yolox_ws, precisions=["int8"], target="tensorrt")
    meta = yolox_ws.variant_meta("int8-trt")
    assert meta["shift"]["convs"] > 0 and meta["shift"]["exact_biases"] == meta["shift"]["convs"]
    q = onnx.load(str(yolox_ws.variant_path("int8-trt")))
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    origins = shift_origins(q)
    quants = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert all(inits[n.input[2]].dtype == np.int8 and not inits[n.input[2]].any() for n in quants)
    shifted_scales = {
        origins[n.input[0]]["source"]: float(inits[n.input[1]])
        for n in quants
        if n.input[0] in origins
    }
    # the same tensors' scales without shifting: about twice as large (one bit back)
    plain = make_int8(
        yolox_ws.spec().path,
        latest_calibration(yolox_ws) / "ranges.json",
        yolox_ws.path("unshifted.onnx"),
        "tensorrt",
        shift=False,
    )
    assert "shift" not in plain
    p = onnx.load(str(yolox_ws.path("unshifted.onnx")))
    p_inits = {i.name: numpy_helper.to_array(i) for i in p.graph.initializer}
    ratios = [
        float(p_inits[n.input[1]]) / shifted_scales[n.input[0]]
        for n in p.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] in shifted_scales
    ]
    assert len(ratios) >= 50
    assert 1.8 <= float(np.median(ratios)) <= 2.05, np.median(ratios)


def test_each_shifted_conv_computes_the_unshifted_conv_exactly(yolox_ws, photos, tmp_path):
    """Every shifted conv of the Q/DQ graph, on the values it really reads, against the
    original conv (its own pads and bias) with the same rounded weights on the unshifted
    dequantized input: equal up to float rounding. This checks the bias folding for the rounded
    weights (`shifted_means`: without it each output channel is off by c * sum(W_q - W)), the
    Pad of -c, and that the zero point `qdq_params` gives puts the same grid on the unshifted
    tensor. (End to end, two fully quantized YOLOX graphs that differ by float rounding alone
    drift apart by flipped codes, so the check is per conv.)"""
    spec = yolox_ws.spec()
    ranges = latest_calibration(yolox_ws) / "ranges.json"
    qpath = tmp_path / "shifted.onnx"
    make_int8(spec.path, ranges, qpath, "tensorrt", keep_float=[], correct_bias=False)
    prepared = name_nodes(raise_opset(onnx.load(spec.path), MIN_QDQ_OPSET))
    prepared = name_nodes(prepare_for_quantization(prepared, workdir=tmp_path)[0])
    original = {n.name: n for n in prepared.graph.node if n.op_type == "Conv"}
    f_inits = {i.name: numpy_helper.to_array(i) for i in prepared.graph.initializer}
    qmodel = onnx.load(str(qpath))
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    producer = {o: n for n in qmodel.graph.node for o in n.output}
    origins = shift_origins(qmodel)
    qp = qdq_params(qmodel)
    checks = []  # (conv, its dequantized input, shift, pads of the shifted copy)
    for node in qmodel.graph.node:
        dq = producer.get(node.input[0])
        if node.op_type != "Conv" or dq is None or dq.op_type != "DequantizeLinear":
            continue
        origin = origins.get(producer[dq.input[0]].input[0])
        if origin is not None:
            checks.append((node, dq.output[0], origin))
            # the analyses' view of that tensor: the same scale, with zero point -c / s
            params = qp[origin["source"]]
            assert float(params["scale"]) == float(inits[dq.input[1]])
            assert int(params["zero_point"]) * float(params["scale"]) == pytest.approx(
                -origin["shift"], rel=1e-5
            )
    assert len(checks) >= 100 and sum(bool(o["pads"]) for _, _, o in checks) >= 20
    wanted = [t for node, dq_out, _ in checks for t in (dq_out, node.output[0])]
    probe = onnx.ModelProto.FromString(qmodel.SerializeToString())
    del probe.graph.output[:]
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in wanted
    )
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    values = dict(zip(wanted, sess.run(None, {spec.input_name: photos[0]})))
    worst = np.inf
    for node, dq_out, origin in checks:
        conv = original[node.name]
        w_dq = producer[node.input[1]]
        w = (inits[w_dq.input[0]].astype(np.float32)) * inits[w_dq.input[1]].reshape(-1, 1, 1, 1)
        b = f_inits[conv.input[2]] if len(conv.input) > 2 else np.zeros(w.shape[0], np.float32)
        single = onnx.helper.make_model(
            onnx.helper.make_graph(
                [
                    onnx.helper.make_node(
                        "Conv",
                        ["x", "w", "b"],
                        ["y"],
                        **{a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute},
                    )
                ],
                "one_conv",
                [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
                [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                [
                    numpy_helper.from_array(w.astype(np.float32), "w"),
                    numpy_helper.from_array(b.astype(np.float32), "b"),
                ],
            ),
            opset_imports=[onnx.helper.make_opsetid("", 13)],
            ir_version=8,
        )
        x = unshifted(values[dq_out], origin["shift"], origin["pads"])
        one = ort.InferenceSession(single.SerializeToString(), providers=["CPUExecutionProvider"])
        expected = one.run(None, {"x": x})[0].astype(np.float64)
        worst = min(worst, _sqnr(expected, values[node.output[0]].astype(np.float64)))
    # float32 cancellation (x - c, then + c * sum(W_q)) and the bias's int32 rounding: the
    # worst conv read 51.6 dB; with the folding left at c * sum(W) it read -2.4 dB
    assert worst >= 40.0, worst


def test_shifting_brings_int8_trt_closer_to_fp32(yolox_ws, photos):
    quantize(yolox_ws, precisions=["int8"], target="tensorrt")
    shifted = yolox_ws.variant_path("int8-trt")
    plain = yolox_ws.path("plain-trt.onnx")
    make_int8(
        yolox_ws.spec().path,
        latest_calibration(yolox_ws) / "ranges.json",
        plain,
        "tensorrt",
        shift=False,
    )
    ref = np.concatenate([_run(onnx.load(yolox_ws.spec().path), x) for x in photos])
    gain = _sqnr(ref, np.concatenate([_run(shifted, x) for x in photos])) - _sqnr(
        ref, np.concatenate([_run(plain, x) for x in photos])
    )
    # one bit more on every activation: about 6 dB where activations dominate the error
    assert gain >= 2.0, f"output SQNR gain from shifting {gain:.1f} dB"


def test_unshifted_restores_values_and_shape():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    c = 1.5
    padded = np.pad(x - c, ((0, 0), (0, 0), (1, 1), (2, 0)), constant_values=-c)
    back = unshifted(padded, c, [0, 0, 1, 2, 0, 0, 1, 0])
    assert back.shape == x.shape and np.allclose(back, x)
