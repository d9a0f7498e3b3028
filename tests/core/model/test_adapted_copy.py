"""Models the app opens only through a copy: a half-precision export (float16 inputs, outputs and
weights, as Ultralytics half=True writes), a float16 converter's graph with nodes out of order,
an image input without a batch axis (torchvision's detectors). Each is refused with the way out,
and `adapt` writes a copy that opens as the same model and finds the same detections. Made from
the real YOLOX-Nano with ONNX Runtime's own FP16 converter, or by prepending ONNX ops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.transformers.float16 import convert_float_to_float16

from app.backends.onnxrt import OrtRunner
from app.core.errors import GrayscaleModel, UnbatchedModel, UnorderedModel, UserError
from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.model.adapted_copy import write_adapted_copy
from app.core.model.inspection import inspect_model
from app.core.model.node_order import sort_nodes
from app.core.model.upcast import drop_noop_casts, upcast_model
from app.core.quant.fp16 import make_fp16
from tests.assets import COCO_DEV64, YOLOX, YOLOX_ONNX, YOLOX_TUTORIAL, needs_assets
from tests.core.model.unknown_copies import EFFICIENTNET_ONNX, RESNET8_ONNX
from tests.reliability.helpers import assert_one_line_error, cli

pytestmark = needs_assets
PHOTOS = sorted((COCO_DEV64 / "images").glob("*.jpg"))[:6]


def half(path: Path, keep_io_types: bool = False) -> Path:
    model = convert_float_to_float16(onnx.load(str(YOLOX_ONNX)), keep_io_types=keep_io_types)
    onnx.save(model, str(path))
    return path


def detections(spec) -> list:
    with OrtRunner(spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        return [pipe.process(read_image(p)).detections for p in PHOTOS]


def test_a_half_export_is_refused_then_its_fp32_copy_is_the_same_model(tmp_path):
    model = half(tmp_path / "yolox_half.onnx")
    with pytest.raises(UserError, match=r"is float16.*int8-studio adapt --model"):
        inspect_model(model)
    copy = write_adapted_copy(model)
    out = copy.path
    assert out == tmp_path / "yolox_half.fp32.onnx" and copy.widened > 100
    assert not (copy.reordered or copy.batched)
    wide = onnx.load(str(out))
    assert not [t.name for t in wide.graph.initializer if t.data_type == TensorProto.FLOAT16]
    spec = inspect_model(out)
    raw = inspect_model(YOLOX)
    assert spec.preset == raw.preset and "graph structure" in spec.notes[0]  # YOLOX, re-exported
    ours, theirs = detections(spec), detections(raw)
    assert sum(len(d) for d in theirs) >= 15
    # FP16-rounded weights: the same objects (near-equal scores may swap places), boxes and
    # scores within 2 px and 0.02
    for a, b in zip(ours, theirs):
        assert len(a) == len(b) and sorted(a.class_ids) == sorted(b.class_ids)
        for box, score, cls in zip(b.boxes, b.scores, b.class_ids):
            near = (a.class_ids == cls) & np.all(np.abs(a.boxes - box) <= 2.0, axis=1)
            assert near.any() and np.abs(a.scores[near] - score).min() <= 0.02


def test_inner_casts_and_constants_are_widened(tmp_path):
    """An FP16 graph with FP32 inputs and outputs: Casts into float16 and float16 constants
    inside; the copy has none left and answers as FP32 does, to FP16's rounding."""
    model = onnx.load(str(half(tmp_path / "inner.onnx", keep_io_types=True)))
    assert any(n.op_type == "Cast" for n in model.graph.node)
    wide, _ = upcast_model(model)
    assert drop_noop_casts(wide) >= 2
    # YOLOX has no Cast of its own; the converter's, float32 to float32 once widened, are gone
    # (left in, their names clash with the Casts the app's own FP16 variant adds)
    assert not [n for n in wide.graph.node if n.op_type == "Cast"]
    assert [o.name for o in wide.graph.output] == [o.name for o in model.graph.output]
    onnx.save(wide, str(tmp_path / "wide.onnx"))
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    with OrtRunner(tmp_path / "wide.onnx") as a, OrtRunner(YOLOX_ONNX) as b:
        got, want = a.infer(x)[0], b.infer(x)[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_adapt_on_the_command_line(tmp_path):
    model = half(tmp_path / "h.onnx")
    proc = subprocess.run(  # `upcast`, its first name, still works
        [sys.executable, "-m", "app", "upcast", "--model", str(model)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = Path(proc.stdout.strip())
    assert out == tmp_path / "h.fp32.onnx" and out.is_file()
    assert_one_line_error(cli("adapt", "--model", str(out)), str(out), "needs no copy")
    assert_one_line_error(
        cli("adapt", "--model", str(model), "--out", str(model)), "is the model itself"
    )


def test_a_converter_graph_out_of_order_is_refused_then_copied_in_order(tmp_path):
    """ONNX Runtime's float16 converter leaves the tutorial YOLOX export's nodes out of order
    (the Casts it adds for Resize's constant come after the Resize, as onnxconverter-common's
    issues 240/261/272 report): ONNX Runtime runs it, onnx's checker refuses it. The app names
    the fault and the fix; the copy is in order, in float32, and answers as the FP32 export."""
    src = YOLOX_TUTORIAL / "coco-yolox_nano.onnx"
    model = tmp_path / "tutorial_half.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=False), str(model))
    with pytest.raises(UnorderedModel, match=r"out of order.*int8-studio adapt --model"):
        inspect_model(model)
    copy = write_adapted_copy(model)
    out = copy.path
    assert copy.reordered and copy.widened > 100
    onnx.checker.check_model(onnx.load(str(out)))  # what calibration's tools need
    spec = inspect_model(out)
    # the copy has two Casts more than the export; the structure signature leaves Casts out,
    # so the export's preset (its resize, short side 384) applies, not a guess
    assert spec.preset == "yolox-tutorial-export.json", spec.notes
    assert any("matched by graph structure" in n for n in spec.notes)
    assert (spec.preprocess.resize, spec.preprocess.short_side) == ("short_side_crop", 384)
    photo = cv2.resize(read_image(PHOTOS[0]), (512, 384))[..., ::-1]  # RGB, x/255
    x = np.ascontiguousarray(photo.transpose(2, 0, 1)[None], np.float32) / 255
    with OrtRunner(out) as a, OrtRunner(src) as b:
        got, want = a.infer(x)[0][0], b.infer(x)[0][0]  # rows x0, y0, w, h, class, prob
    assert got.shape == want.shape
    sure = want[:, 5] > 0.3
    assert sure.sum() >= 3 and np.array_equal(got[sure, 4], want[sure, 4])
    assert np.abs(got[sure, :4] - want[sure, :4]).max() < 2.0
    assert np.abs(got[:, 5] - want[:, 5]).max() < 0.02


def test_an_fp32_graph_out_of_order_gets_a_copy_in_order(tmp_path):
    """Only the order wrong (nodes reversed): the copy widens nothing and is the same graph in
    order; nothing is left out or duplicated, and a graph already in order is left as it is."""
    model = onnx.load(str(YOLOX_ONNX))
    order = [n.name or n.output[0] for n in model.graph.node]
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    path = tmp_path / "reversed.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnorderedModel):
        inspect_model(path)
    copy = write_adapted_copy(path, tmp_path / "ordered.onnx")
    out = copy.path
    assert (copy.widened, copy.reordered, copy.batched) == (0, True, False)
    fixed = onnx.load(str(out))
    assert sorted(n.name or n.output[0] for n in fixed.graph.node) == sorted(order)
    assert inspect_model(out).preset == inspect_model(YOLOX_ONNX).preset
    assert not sort_nodes(fixed)  # in order: nothing moves


def _unbatched(path: Path, opset: int) -> Path:
    """The real YOLOX-Nano taking one image [3, 416, 416], as torchvision's detectors export:
    an Unsqueeze in front of its input (at `opset`, Unsqueeze's axes as an attribute below 13)."""
    model = onnx.load(str(YOLOX_ONNX))
    graph = model.graph
    name = graph.input[0].name
    model.opset_import[0].version = opset
    if model.opset_import[0].version >= 13:
        graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
        unsqueeze = helper.make_node("Unsqueeze", ["chw", "axis0"], [name])
    else:
        unsqueeze = helper.make_node("Unsqueeze", ["chw"], [name], axes=[0])
    graph.node.insert(0, unsqueeze)
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("chw", TensorProto.FLOAT, [3, 416, 416]))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("opset", [11, 13])
def test_an_image_input_without_a_batch_axis_gets_a_copy_with_one(tmp_path, opset):
    model = _unbatched(tmp_path / "chw.onnx", opset)
    with pytest.raises(UnbatchedModel, match=r"chw \[3, 416, 416\] has no batch axis.*adapt"):
        inspect_model(model)
    copy = write_adapted_copy(model)
    assert copy.path == tmp_path / "chw.adapted.onnx" and copy.batched
    assert (copy.widened, copy.reordered) == (0, False)
    spec = inspect_model(copy.path)
    assert spec.input_name == "chw" and spec.input_shape == [1, 3, 416, 416]
    assert spec.postprocess.decoder == "yolox_raw"
    x = np.random.default_rng(2).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    with OrtRunner(copy.path) as a, OrtRunner(YOLOX_ONNX) as b:
        assert np.array_equal(a.infer(x)[0], b.infer(x)[0])  # the same graph after the Squeeze


def _gray(source: Path, path: Path, channel: int) -> Path:
    """`source` (a real 3-channel classifier) taking one channel, replicated to three inside:
    a grayscale model with real weights (input [N, 1, H, W], or [N, H, W, 1] for NHWC)."""
    model = onnx.load(str(source))
    graph = model.graph
    old = graph.input[0]
    dims = [d.dim_value or d.dim_param for d in old.type.tensor_type.shape.dim]
    dims[channel] = 1
    for node in graph.node:
        node.input[:] = ["three" if i == old.name else i for i in node.input]
    reps = [1, 1, 1, 1]
    reps[channel] = 3
    graph.initializer.append(numpy_helper.from_array(np.array(reps, np.int64), "reps"))
    graph.node.insert(0, helper.make_node("Tile", ["gray", "reps"], ["three"]))
    graph.input.remove(old)
    graph.input.insert(0, helper.make_tensor_value_info("gray", TensorProto.FLOAT, dims))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("source, channel", [(EFFICIENTNET_ONNX, 1), (RESNET8_ONNX, 3)])
def test_a_grayscale_model_gets_a_copy_that_takes_colour(tmp_path, source, channel):
    """NCHW (EfficientNet-Lite0) and NHWC (ResNet-8) models taking one channel: refused with the
    way out; the copy fed an RGB photo answers exactly as the model fed its BT.601 gray."""
    model = _gray(source, tmp_path / "gray.onnx", channel)
    with pytest.raises(GrayscaleModel, match=r"has one channel.*int8-studio adapt --model"):
        inspect_model(model)
    (tmp_path / "out").mkdir()
    copy = write_adapted_copy(model, tmp_path / "out")  # a folder: the default name in it
    assert copy.path == tmp_path / "out" / "gray.adapted.onnx"
    assert copy.colored and "converted to gray" in copy.summary()
    spec = inspect_model(copy.path)
    assert spec.input_shape[channel] == 3 and spec.task == "classification"
    # the guess keeps the gray conversion exact: one mean and std for every channel
    assert len(set(spec.preprocess.mean)) == 1 and len(set(spec.preprocess.std)) == 1
    assert any(n.startswith("a grayscale model's copy") for n in spec.notes)
    h, w = [d for i, d in enumerate(spec.input_shape[1:], 1) if i != channel]
    rgb = cv2.resize(read_image(PHOTOS[1]), (w, h))[..., ::-1].astype(np.float32)
    gray = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2GRAY)[..., None]
    to_layout = (lambda a: a.transpose(2, 0, 1)[None]) if channel == 1 else (lambda a: a[None])
    with OrtRunner(copy.path) as a, OrtRunner(model) as b:
        got = a.infer(np.ascontiguousarray(to_layout(rgb)))[0]
        want = b.infer(np.ascontiguousarray(to_layout(gray)))[0]
    assert got.argmax() == want.argmax()
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


def test_a_uint8_grayscale_model_is_refused_with_what_to_do(tmp_path):
    model = onnx.load(str(_gray(RESNET8_ONNX, tmp_path / "gray.onnx", 3)))
    graph = model.graph
    graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    for node in graph.node:
        node.input[:] = ["gray_f" if i == "gray" else i for i in node.input]
    graph.node.insert(0, helper.make_node("Cast", ["gray"], ["gray_f"], to=TensorProto.FLOAT))
    path = tmp_path / "gray_u8.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UserError, match=r"has one channel and takes uint8.*export it taking float"):
        inspect_model(path)
    with pytest.raises(UserError, match="needs no copy"):
        write_adapted_copy(path)


def test_the_copy_of_a_converted_model_gets_the_apps_own_fp16_variant(tmp_path):
    """EfficientNet-Lite0 through the float16 converter with FP32 inputs and outputs (nodes out
    of order, Casts named graph_input_cast_0 ...), then adapt, then the app's FP16 variant: it
    failed with 'two different nodes write graph_input_cast_0' (a traceback in `quantize`)."""
    model = tmp_path / "effnet_half.onnx"
    converted = convert_float_to_float16(onnx.load(str(EFFICIENTNET_ONNX)), keep_io_types=True)
    onnx.save(converted, str(model))
    copy = write_adapted_copy(model)
    assert copy.reordered and copy.widened and copy.casts_dropped >= 2
    meta = make_fp16(copy.path, tmp_path / "fp16.onnx")
    assert meta["sha256"]
    x = np.random.default_rng(3).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    with OrtRunner(tmp_path / "fp16.onnx") as a, OrtRunner(EFFICIENTNET_ONNX) as b:
        got, want = a.infer(x)[0], b.infer(x)[0]
    assert got.argmax() == want.argmax() and np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_a_model_widened_elsewhere_is_told_to_drop_the_converters_casts(tmp_path):
    """Widened back by another tool, the converter's Casts (float32 to float32 now) and their
    names stay: the FP16 variant's build says so in one line and names `adapt`, whose copy
    (only those Casts removed) builds."""
    converted = convert_float_to_float16(onnx.load(str(YOLOX_ONNX)), keep_io_types=True)
    wide, _ = upcast_model(converted)  # widened, casts kept: what a plain widening tool leaves
    sort_nodes(wide)
    model = tmp_path / "widened.onnx"
    onnx.save(wide, str(model))
    with pytest.raises(UserError, match=r"cannot build its FP16 variant.*int8-studio adapt"):
        make_fp16(model, tmp_path / "fp16.onnx")
    assert not (tmp_path / "fp16.onnx").exists()
    copy = write_adapted_copy(model)
    assert (copy.widened, copy.reordered, copy.casts_dropped) == (0, False, 2)
    assert make_fp16(copy.path, tmp_path / "fp16.onnx")["sha256"]
