"""The per-channel conv-output rewrite the channel_outputs benchmark measures, on a real
YOLOX-Nano INT8 graph: each channel is read back on its own grid (exact to half its step), and
the per-axis and BatchNormalization forms compute the same graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from app.benchmarks.channel_outputs import (
    channel_histograms,
    channel_ranges,
    noise_gain_db,
    output_ranges,
    per_channel_outputs,
)
from app.core.model.inspection import inspect_model
from app.core.quant.calibration import latest_calibration
from app.core.quant.equalize_ranges import calibration_inputs
from app.core.quant.graph_rules import consumers_of
from app.core.quant.quantize import quantize
from tests.conftest import YOLOX, needs_assets
from tests.workspaces import minmax_workspace

pytestmark = needs_assets


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    ws = minmax_workspace(tmp_path_factory, inspect_model(YOLOX))
    quantize(ws, precisions=["int8"])
    spec = ws.spec()
    tensors = output_ranges(onnx.load(str(ws.variant_path("int8"))))
    batches, _ = calibration_inputs(spec, latest_calibration(ws) / "ranges.json")
    hist = channel_histograms(Path(spec.path), tensors, spec.input_name, batches)
    return ws, spec, tensors, hist, batches[0][:1]


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def test_every_float_silu_conv_is_a_site_and_most_channels_get_finer_steps(built):
    ws, _spec, tensors, hist, _x = built
    qmodel = onnx.load(str(ws.variant_path("int8")))
    fused = sum(n.op_type == "QuickGelu" for n in qmodel.graph.node)
    int8_convs = sum(n.op_type == "Conv" for n in qmodel.graph.node) - len(
        ws.variant_meta("int8")["kept_float"]
    )
    # YOLOX-Nano: every INT8 conv feeds a float SiLU and nothing else
    assert len(tensors) == int8_convs and fused >= int8_convs
    gains = [noise_gain_db(hist[t], *tensors[t], 99.9999) for t in tensors]
    assert min(gains) >= 0.0 and np.median(gains) > 3.0  # per-channel steps never coarser


def test_a_rewritten_conv_output_is_read_back_per_channel_to_half_a_step(built):
    ws, spec, tensors, hist, x = built
    name = max(tensors, key=lambda t: noise_gain_db(hist[t], *tensors[t], 99.9999))
    original = onnx.load(str(ws.variant_path("int8")))
    rewritten = onnx.load(str(ws.variant_path("int8")))
    assert per_channel_outputs(rewritten, {name: hist[name]}, 99.9999, "axis") == 1

    def dequantized(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
        users = consumers_of(model)
        dq = users[users[name][0].output[0]][0]
        model.graph.output.extend(
            helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
            for t in (name, dq.output[0])
        )
        conv, read = _session(model).run([name, dq.output[0]], {spec.input_name: x})
        return conv, read

    conv, per_tensor = dequantized(original)
    _, per_channel = dequantized(rewritten)
    lo, hi = tensors[name]
    lo_c, hi_c = channel_ranges(hist[name], lo, hi, 99.9999)
    step = (hi_c - lo_c) / 255.0
    inside = (conv >= lo_c[None, :, None, None]) & (conv <= hi_c[None, :, None, None])
    error = np.abs(per_channel - conv)
    # the weight-scale and bias rewrite is exact: each channel rounds on its own grid
    bound = np.broadcast_to(step[None, :, None, None] / 2 + 1e-4, conv.shape)
    assert inside.mean() > 0.99 and np.all(error[inside] <= bound[inside])
    assert error[inside].mean() < 0.75 * np.abs(per_tensor - conv)[inside].mean()


def test_the_per_axis_and_batchnorm_forms_compute_the_same_graph(built):
    ws, spec, tensors, hist, x = built
    name = next(iter(tensors))
    reads = []
    for form in ("axis", "bn"):
        model = onnx.load(str(ws.variant_path("int8")))
        per_channel_outputs(model, {name: hist[name]}, 99.9999, form)
        silu = next(n for n in model.graph.node if n.op_type == "QuickGelu"
                    and _reads_from(model, n, name))  # fmt: skip
        model.graph.output.append(
            helper.make_tensor_value_info(silu.input[0], onnx.TensorProto.FLOAT, None)
        )
        reads.append(_session(model).run([silu.input[0]], {spec.input_name: x})[0])
    # what the SiLU reads is the same to float rounding: one tensor, two ways of dequantizing
    np.testing.assert_allclose(reads[1], reads[0], rtol=1e-5, atol=1e-5)
    axis, bn = (onnx.load(str(ws.variant_path("int8"))) for _ in range(2))
    assert per_channel_outputs(axis, hist, 99.9999, "axis") == len(tensors)
    assert per_channel_outputs(bn, hist, 99.9999, "bn") == len(tensors)
    assert sum(n.op_type == "BatchNormalization" for n in bn.graph.node) >= len(tensors)
    # Through 97 layers the float-rounding differences flip a few roundings (the same graph
    # on ONNX Runtime's integer kernels and on its exact Q/DQ math differs as much: ~0.997)
    a = _session(axis).run(None, {spec.input_name: x})[0].astype(np.float64).ravel()
    b = _session(bn).run(None, {spec.input_name: x})[0].astype(np.float64).ravel()
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99


def _reads_from(model: onnx.ModelProto, node: onnx.NodeProto, conv_output: str) -> bool:
    """Whether `node` reads `conv_output` through its Q and a DequantizeLinear (and, in the
    BatchNormalization form, the BatchNormalization after it)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    up = producer.get(node.input[0])
    while up is not None and up.op_type in (
        "BatchNormalization",
        "DequantizeLinear",
        "QuantizeLinear",
    ):
        if conv_output in up.input:
            return True
        up = producer.get(up.input[0])
    return False
