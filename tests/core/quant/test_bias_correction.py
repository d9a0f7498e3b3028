"""Bias correction of the ort-cpu INT8 graph on the real EfficientNet-Lite0 (issue 17): each
quantized conv's int32 bias absorbs the mean shift of its rounded weights, which brings the
INT8 logits measurably closer to FP32's than the uncorrected recipe on real photos."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from app.benchmarks.int8_speed import efficientnet_spec
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.workspace import Workspace
from app.core.quant.bias_correction import load_channel_means
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.quantize import make_int8, quantize
from tests.assets import ASSETS, IMAGES, needs_assets
from tests.workspaces import copy_photos, minmax_workspace

pytestmark = needs_assets


@pytest.fixture(scope="module")
def effnet_ws(tmp_path_factory):
    return minmax_workspace(tmp_path_factory, efficientnet_spec(ASSETS), 16)


def _exact_logits(path, x: np.ndarray) -> np.ndarray:
    """Q/DQ graph as exact fake-quant math (no fusion, so no kernel saturation on AVX2)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _sqnr(ref: np.ndarray, out: np.ndarray) -> float:
    return float(10 * np.log10((ref**2).sum() / ((out - ref) ** 2).sum()))


def test_corrected_biases_bring_int8_logits_closer_to_fp32(effnet_ws, tmp_path):
    meta = quantize(effnet_ws, precisions=["int8"])[0]
    spec = effnet_ws.spec()
    calib = latest_calibration(effnet_ws)
    assert load_channel_means(calib, spec.sha256) is not None
    # every quantized conv has a bias; the classifier Gemm (quantized, float output) is not a conv
    quantized_convs = meta["compute_ops"] - meta["compute_ops_kept_float"] - 1
    assert meta["bias_correction"]["convs"] == quantized_convs
    old = tmp_path / "uncorrected.onnx"
    info = make_int8(spec.path, calib / "ranges.json", old, "ort-cpu", correct_bias=False)
    assert info["bias_correction"]["convs"] == 0
    pre = Preprocessor(spec.preprocess)
    files = sorted((IMAGES / "imagenet-samples").glob("*.jpg"))
    files += sorted((IMAGES / "photos-misc103").glob("*.jpg"))[:14]
    x = np.concatenate([np.array(pre(read_image(f))[0], copy=True) for f in files])
    ref = _exact_logits(spec.path, x)
    new_db = _sqnr(ref, _exact_logits(effnet_ws.variant_path("int8"), x))
    old_db = _sqnr(ref, _exact_logits(old, x))
    # measured on the 177 photos with 128 calibration images: 19.6 -> 24.4 dB
    assert new_db >= old_db + 2.0, f"logit SQNR {old_db:.1f} dB -> {new_db:.1f} dB"


def test_each_bias_moves_by_the_weight_rounding_times_the_input_mean(effnet_ws):
    quantize(effnet_ws, precisions=["int8"])
    spec = effnet_ws.spec()
    means = load_channel_means(latest_calibration(effnet_ws), spec.sha256)
    q = onnx.load(str(effnet_ws.variant_path("int8")))
    f = onnx.load(str(spec.path))
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    f_inits = {i.name: numpy_helper.to_array(i) for i in f.graph.initializer}
    producer = {o: n for n in q.graph.node for o in n.output}
    conv = next(n for n in q.graph.node if n.name == "/_blocks.1/_depthwise_conv/Conv")
    orig = next(n for n in f.graph.node if n.name == conv.name)
    dq_w, dq_b = producer[conv.input[1]], producer[conv.input[2]]
    w_q = inits[dq_w.input[0]].astype(np.float64) * inits[dq_w.input[1]].reshape(-1, 1, 1, 1)
    w = f_inits[orig.input[1]].astype(np.float64)
    mean = means[producer[producer[conv.input[0]].input[0]].input[0]]
    expected = f_inits[orig.input[2]] - (w_q - w).sum((1, 2, 3)) * mean  # depthwise: one input each
    bias_scale = inits[dq_b.input[1]].astype(np.float64)
    got = inits[dq_b.input[0]].astype(np.float64) * bias_scale
    assert np.abs(got - expected).max() <= bias_scale.max() / 2 + 1e-9
    # and the shift is real: an uncorrected bias would sit a whole step or more away somewhere
    shift = np.abs((w_q - w).sum((1, 2, 3)) * mean)
    assert (shift > bias_scale).any()


def test_int8_is_still_built_when_the_calibration_images_are_gone(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    copy_photos(folder, 4)
    ws = Workspace.for_model(efficientnet_spec(ASSETS), tmp_path / "ws")
    calibrate(ws, folder, method="minmax")
    shutil.rmtree(folder)  # the means are measured on these at quantize time
    meta = quantize(ws, precisions=["int8"])[0]
    assert meta["bias_correction"]["convs"] == 0
    assert "channel_means.json" in meta["bias_correction"]["reason"]
    assert ws.variant_path("int8").is_file()
