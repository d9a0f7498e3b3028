"""The Focus stem folded into its convolution (`space_to_depth`), on YOLOX-Nano's real weights:
the same detections on real photos, in both export formats, whatever order the four pixel
phases are concatenated in; a pattern that differs in any detail is left alone."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.quant.fp16 import make_fp16
from app.core.quant.graph_rules import name_nodes
from app.core.quant.prepare import prepare_for_quantization
from app.core.quant.space_to_depth import fold_space_to_depth
from tests.assets import COCO_DEV64, YOLOX, YOLOX_ONNX, YOLOX_TUTORIAL, needs_assets

pytestmark = needs_assets
PHOTOS = sorted((COCO_DEV64 / "images").glob("*.jpg"))[:4]


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _yolox_inputs() -> list[np.ndarray]:
    pre = Preprocessor(inspect_model(YOLOX).preprocess)
    return [pre(read_image(p))[0] for p in PHOTOS]


def _same_outputs(original: onnx.ModelProto, folded: onnx.ModelProto, feeds) -> None:
    a, b = _session(original), _session(folded)
    name = a.get_inputs()[0].name
    for x in feeds:
        want, got = a.run(None, {name: x})[0], b.run(None, {name: x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def _stem(model: onnx.ModelProto) -> list[str]:
    """The op types before the first Conv."""
    ops = [n.op_type for n in model.graph.node if n.op_type != "Constant"]
    return ops[: ops.index("Conv")]


def test_yolox_focus_becomes_one_strided_conv_with_the_same_detections():
    original = onnx.load(str(YOLOX_ONNX))
    assert _stem(original).count("Slice") == 8 and "Concat" in _stem(original)
    folded, convs = fold_space_to_depth(original)
    assert convs == ["Conv_41"]
    assert _stem(folded) == []
    conv = next(n for n in folded.graph.node if n.name == "Conv_41")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert conv.input[0] == "images"
    assert (attrs["kernel_shape"], attrs["strides"], attrs["pads"]) == ([6, 6], [2, 2], [2] * 4)
    onnx.checker.check_model(folded)
    _same_outputs(original, folded, _yolox_inputs())
    # the replaced 3x3 weight is gone, not left behind unused
    assert "1178" not in {i.name for i in folded.graph.initializer}


def test_phases_concatenated_in_another_order_fold_to_the_same_function():
    """A derived export: the four phases in reverse order and the conv's input channels
    permuted to match (the same model); the fold must read the order from the graph."""
    model = onnx.load(str(YOLOX_ONNX))
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    conv = next(n for n in model.graph.node if n.name == "Conv_41")
    inputs = list(concat.input)
    del concat.input[:]
    concat.input.extend(reversed(inputs))
    weight = next(i for i in model.graph.initializer if i.name == conv.input[1])
    w = numpy_helper.to_array(weight)
    blocks = np.split(w, 4, axis=1)
    weight.CopyFrom(numpy_helper.from_array(np.concatenate(blocks[::-1], axis=1), weight.name))
    folded, convs = fold_space_to_depth(model)
    assert convs == ["Conv_41"]
    _same_outputs(onnx.load(str(YOLOX_ONNX)), folded, _yolox_inputs()[:2])


def test_tutorial_export_with_free_image_size_and_a_channel_flip_first():
    """The tutorial-format YOLOX: height and width free, a BGR -> RGB Slice before the Focus."""
    original = onnx.load(str(YOLOX_TUTORIAL / "coco-yolox_nano.onnx"))
    folded, convs = fold_space_to_depth(original)
    assert convs == ["/net/backbone/backbone/stem/conv/conv/Conv"]
    assert _stem(folded).count("Slice") == 1  # the channel flip stays
    a, b = _session(original), _session(folded)
    for path, size in zip(PHOTOS[:2], [(416, 416), (320, 480)]):
        image = read_image(path)
        resized = cv2.resize(image, (size[1], size[0]))
        x = np.ascontiguousarray(resized.transpose(2, 0, 1)[None].astype(np.float32))
        want, got = a.run(None, {"input": x})[0], b.run(None, {"input": x})[0]
        # boxes and scores; the class column of near-zero-score rows may flip on a float tie
        np.testing.assert_allclose(got[..., :4], want[..., :4], atol=0.05)
        np.testing.assert_allclose(got[..., 5], want[..., 5], atol=1e-4)
        sure = want[0, :, 5] > 0.05
        assert sure.any()
        np.testing.assert_array_equal(got[0, sure, 4], want[0, sure, 4])


def _altered(change) -> onnx.ModelProto:
    model = onnx.load(str(YOLOX_ONNX))
    change(model)
    return model


def _set(model, node_name, attr, value):
    node = next(n for n in model.graph.node if n.name == node_name)
    for a in list(node.attribute):
        if a.name == attr:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(attr, value))


def _step_three(model):
    # the step of the first column slice, shared by two phases, becomes 3: not a pixel phase
    slice_node = next(n for n in model.graph.node if n.name == "Slice_9")
    model.graph.initializer.append(numpy_helper.from_array(np.array([3], np.int64), "step3"))
    slice_node.input[4] = "step3"


def _concat_also_an_output(model):
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    model.graph.output.append(
        helper.make_tensor_value_info(concat.output[0], onnx.TensorProto.FLOAT, None)
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda m: _set(m, "Conv_41", "dilations", [2, 2]),
        _step_three,
        _concat_also_an_output,
    ],
    ids=["dilated-conv", "slice-step-3", "concat-read-elsewhere"],
)
def test_a_pattern_that_differs_is_left_alone(change):
    model = _altered(change)
    folded, convs = fold_space_to_depth(model)
    assert convs == []
    assert folded is model


def test_preparation_and_fp16_fold_it_and_keep_the_conv_name(tmp_path):
    model = name_nodes(onnx.load(str(YOLOX_ONNX)))
    prepared, info = prepare_for_quantization(model, workdir=tmp_path)
    assert info["space_to_depth_folded"] == ["Conv_41"]
    assert "Conv_41" in {n.name for n in prepared.graph.node}
    assert _stem(prepared) == []
    meta = make_fp16(YOLOX_ONNX, tmp_path / "fp16.onnx")
    assert meta["space_to_depth_folded"] == ["Conv_41"]
    assert _stem(onnx.load(str(tmp_path / "fp16.onnx"))) == ["Cast"]  # the FP32 input's cast


def test_quantized_graph_matches_its_float_twin_weight_for_weight(tmp_path_factory, caplog):
    """The precision analysis and the sensitive-block measurement compare a fully quantized
    graph with its float twin by name; the folded stem conv's weight must have one, and the
    channel means bias correction reads must cover the image the folded conv now reads."""
    from onnxruntime.quantization.qdq_loss_debug import create_weight_matching

    from app.core.quant.bias_correction import conv_input_tensors
    from app.core.quant.calibration import latest_calibration
    from app.core.quant.quantize import make_int8
    from app.core.quant.space_to_depth import comparable_float
    from tests.workspaces import minmax_workspace

    ws = minmax_workspace(tmp_path_factory, inspect_model(YOLOX), 4)
    tmp = tmp_path_factory.mktemp("twin")
    float_path, qdq_path = tmp / "float.onnx", tmp / "int8-all.onnx"
    onnx.save(comparable_float(YOLOX_ONNX), str(float_path))
    make_int8(float_path, latest_calibration(ws) / "ranges.json", qdq_path, "ort-cpu", [])
    with caplog.at_level("ERROR"):
        matched = create_weight_matching(str(float_path), str(qdq_path))
    assert "Conv_41_space_to_depth_W" in matched
    assert not [r for r in caplog.records if "not found" in r.getMessage()]
    assert "images" in conv_input_tensors(onnx.load(str(YOLOX_ONNX)))
