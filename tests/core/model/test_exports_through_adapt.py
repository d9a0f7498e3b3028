"""Detector exports the app opens through `adapt`'s copy or reads only by their outputs' shapes,
made from the real YOLOX-Nano by appending ONNX ops: PaddleDetection's and RT-DETR's size inputs
beside the image, PaddleDetection's NMS rows, a torchvision export with numbered outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from app.core.errors import UserError
from app.core.model.adapted_copy import write_adapted_copy
from app.core.model.inspection import inspect_model
from tests.assets import needs_assets
from tests.core.model.test_adapted_copy import detections

pytestmark = needs_assets


def _run(path: Path, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize(
    "kind, image, sizes, decoder",
    [
        # PaddleDetection: (height, width) and a scale of 1 from the picture to the input
        (
            "ppyoloe",
            "image",
            {"im_shape": [416.0, 416.0], "scale_factor": [1.0, 1.0]},
            "boxes_scores",
        ),
        (
            "ppdet_nms",
            "image",
            {"im_shape": [416.0, 416.0], "scale_factor": [1.0, 1.0]},
            "class_score_rows",
        ),
        # RT-DETR: the (width, height) its 0..1 boxes are multiplied by, int64
        ("rtdetr", "images", {"orig_target_sizes": [416, 416]}, "boxes_labels_scores"),
    ],
)
def test_size_inputs_beside_the_image_get_a_copy_that_computes_them(
    tmp_path, kind, image, sizes, decoder
):
    """PaddleDetection's and RT-DETR's exports take the original picture's size beside the image
    (layouts derived from the real YOLOX-Nano): refused with the way out; the copy takes the
    image alone and computes the same outputs as the model fed the input's own size."""
    from app.core.errors import SizeInputsModel
    from tests.core.model.derived_layouts import build_layout

    model = build_layout(kind, tmp_path / f"{kind}.onnx")
    names = ", ".join(sizes)
    with pytest.raises(SizeInputsModel, match=f"it takes {names}, the size of the picture"):
        inspect_model(model)
    copy = write_adapted_copy(model)
    assert copy.sized == tuple(sizes) and f"{names} computed from the image" in copy.summary()
    spec = inspect_model(copy.path)
    assert spec.input_name == image and spec.postprocess.decoder == decoder
    assert not spec.postprocess.boxes_normalized  # input pixels: the scale of 1 kept them so
    x = np.random.default_rng(3).uniform(0, 1, (1, 3, 416, 416)).astype(np.float32)
    given = {
        k: np.array([v], np.int64 if kind == "rtdetr" else np.float32) for k, v in sizes.items()
    }
    want = _run(model, {image: x, **given})
    got = _run(copy.path, {image: x})
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a, b)


def test_an_extra_input_the_app_does_not_know_is_still_refused_by_name(tmp_path):
    from tests.core.model.derived_layouts import build_layout

    model = onnx.load(str(build_layout("rtdetr", tmp_path / "rtdetr.onnx")))
    model.graph.input[1].name = "target_sizes_override"  # not a name the copy knows to compute
    for node in model.graph.node:
        node.input[:] = ["target_sizes_override" if i == "orig_target_sizes" else i
                         for i in node.input]  # fmt: skip
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(UserError, match=r"has 2 inputs \(images, target_sizes_override\)") as e:
        inspect_model(tmp_path / "other.onnx")
    assert "adapt" not in str(e.value)


def test_paddle_rows_for_the_second_image_or_an_empty_result_are_not_read(tmp_path):
    """PaddleDetection's NMS rows hold the whole batch, counted per image, and an image with
    nothing found gets one row of class -1: neither is a detection of the first image."""
    from app.core.frames.decoders import decode_class_score_rows
    from tests.core.model.derived_layouts import build_layout

    spec = inspect_model(write_adapted_copy(build_layout("ppdet_nms", tmp_path / "p.onnx")).path)
    assert spec.postprocess.decoder == "class_score_rows"
    rows = np.array([[3, 0.9, 10, 20, 50, 60], [7, 0.8, 1, 2, 3, 4]], np.float32)  # 1 + 1
    boxes, scores, cls, _ = decode_class_score_rows([rows, np.array([1], np.int32)], spec, 416,
                                                    416, 0.25)  # fmt: skip
    assert cls.tolist() == [3] and scores.tolist() == pytest.approx([0.9])
    assert boxes.tolist() == [[10, 20, 50, 60]]
    empty = np.array([[-1, 0, 0, 0, 0, 0]], np.float32)
    assert len(decode_class_score_rows([empty, np.array([1], np.int32)], spec, 416, 416, 0)[0]) == 0


def test_a_torchvision_export_with_numbered_outputs_is_read_by_shape(tmp_path):
    """torch.onnx.export numbers the outputs unless told their names: boxes, labels and scores
    then say nothing by name (and here come in another order); read by shape and type they give
    the detections the named export gives."""
    from tests.core.model.derived_layouts import build_layout

    named = build_layout("torchvision", tmp_path / "named.onnx")
    model = onnx.load(str(named))
    numbers = {"boxes": "3437", "labels": "3441", "scores": "3438"}
    for node in model.graph.node:
        node.output[:] = [numbers.get(o, o) for o in node.output]
    outs = {o.name: o for o in model.graph.output}
    for o in outs.values():
        o.name = numbers[o.name]
    model.graph.ClearField("output")
    model.graph.output.extend([outs["scores"], outs["boxes"], outs["labels"]])
    onnx.save(model, str(tmp_path / "numbered.onnx"))
    spec = inspect_model(write_adapted_copy(tmp_path / "numbered.onnx").path)
    assert spec.postprocess.decoder == "boxes_labels_scores", spec.notes
    assert spec.postprocess.outputs == numbers and spec.labels[0] == "person"
    assert any("read by shape and type" in n for n in spec.notes)
    reference = inspect_model(write_adapted_copy(named).path)
    found, want = detections(spec), detections(reference)
    assert sum(map(len, want)) > 10  # real photos, real boxes
    for a, b in zip(found, want, strict=True):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.class_ids, b.class_ids)
