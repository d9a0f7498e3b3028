"""Classifier heads that end without a flatten ([N, C, 1, 1], as SqueezeNet's) or with an extra
unit axis ([N, 1, C]) are classifiers with the same answers as the flat head; a model whose batch
is declared free but whose export fixed a shape runs one image at a time, from calibration on.

The models are the real EfficientNet-Lite0 with one Reshape appended."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.backends.onnxrt import OrtRunner
from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from tests.assets import IMAGES, needs_assets
from tests.core.model.derived_layouts import build_layout
from tests.core.model.unknown_copies import EFFICIENTNET_ONNX

pytestmark = needs_assets
PHOTOS = sorted((IMAGES / "imagenet-samples").glob("*.jpg"))[:4]


def reshaped(path: Path, shape: list[int]) -> Path:
    """EfficientNet-Lite0 (input [batch, 3, 224, 224]) with its logits reshaped to `shape`."""
    model = onnx.load(str(EFFICIENTNET_ONNX))
    out = model.graph.output[0]
    for node in model.graph.node:
        node.output[:] = ["flat_logits" if o == out.name else o for o in node.output]
    model.graph.ClearField("output")
    model.graph.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), "shape"))
    model.graph.node.append(helper.make_node("Reshape", ["flat_logits", "shape"], ["logits"]))
    dims = ["batch" if d == -1 else d for d in shape]
    model.graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, dims))
    onnx.save(model, str(path))
    return path


def top5(spec, model_path) -> list[list[int]]:
    with OrtRunner(model_path) as runner:
        pipe = FramePipeline(spec, runner)
        return [
            [t["class_id"] for t in pipe.process(read_image(p)).to_json(spec)["topk"]]
            for p in PHOTOS
        ]


@pytest.mark.parametrize("shape", [[-1, 1000, 1, 1], [-1, 1, 1000]], ids=["NC11", "N1C"])
def test_unflattened_heads_are_classifiers_with_the_flat_heads_answers(tmp_path, shape):
    flat = inspect_model(EFFICIENTNET_ONNX)
    spec = inspect_model(reshaped(tmp_path / "m.onnx", shape))
    assert spec.task == "classification" and len(spec.labels) == 1000
    assert spec.postprocess.apply_softmax == flat.postprocess.apply_softmax
    assert spec.input_shape[0] == "batch"  # a free batch that works stays free
    assert any("read as [N, classes]" in n for n in spec.notes)
    answers = top5(spec, spec.path)
    assert answers == top5(flat, flat.path) and len(answers[0]) == 5


def test_a_free_batch_that_fails_at_two_is_run_one_image_at_a_time(tmp_path):
    spec = inspect_model(reshaped(tmp_path / "fixed.onnx", [1, 1000, 1, 1]))
    assert spec.input_shape[0] == 1
    assert any("a batch of 2 fails (its Reshape node fails" in n for n in spec.notes)
    ws = Workspace.for_model(spec, tmp_path / "ws")
    result = calibrate(ws, IMAGES / "photos-misc103", count=3, method="minmax")
    assert len(result.images_used) == 3 and not result.skipped  # it used to crash at batch 8


def test_a_2d_list_of_detections_is_not_taken_for_a_classifier(tmp_path):
    """[K, 7] rows of detections (YOLOv7's end-to-end export, from YOLOX-Nano's weights) are
    2-D like [N, C] scores, but their first axis is not the images': read as detection rows,
    where they used to be a 7-class classifier."""
    model = build_layout("batch_rows", tmp_path / "rows.onnx", meta=False)
    spec = inspect_model(model, probe_images=PHOTOS[:2])
    assert spec.task == "detection" and spec.postprocess.decoder == "batch_rows", spec.notes


def test_a_classifier_of_free_size_is_fed_224_not_a_detectors_416(tmp_path):
    """EfficientNet-Lite0 (made for 224) exported with free height and width: a global pool runs
    at any size, so the probe tells nothing; 224 is assumed and said, and --size still wins."""
    model = onnx.load(str(EFFICIENTNET_ONNX))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    onnx.save(model, str(tmp_path / "free.onnx"))
    spec = inspect_model(tmp_path / "free.onnx")
    assert spec.preprocess.size == [224, 224] and spec.dynamic_size
    assert any("224x224, the usual classifier size" in n for n in spec.notes)
    flat = inspect_model(EFFICIENTNET_ONNX)  # fixed at 224: the same answers
    assert top5(spec, spec.path) == top5(flat, flat.path)
    assert inspect_model(tmp_path / "free.onnx", size=[256, 256]).preprocess.size == [256, 256]
