"""Exporter metadata (names, imgsz, stride, task), id-numbered label files, and specs saved before
the new preprocessing fields."""

from __future__ import annotations

from dataclasses import asdict

import onnx
import pytest

from app.core.model.inspection import inspect_model
from app.core.model.label_names import indexed_labels
from app.core.model.metadata import parse_names, read_metadata
from app.core.model.spec import ModelSpec, Preprocess
from tests.assets import YOLOX, needs_assets
from tests.core.model.derived_layouts import build_layout


def _with_props(props: dict[str, str]) -> onnx.ModelProto:
    model = onnx.ModelProto()
    onnx.helper.set_model_props(model, props)
    return model


def test_ultralytics_metadata_gives_names_size_stride_and_its_preprocessing():
    meta = read_metadata(
        _with_props(
            {
                "author": "Ultralytics",
                "names": "{0: 'person', 1: 'bicycle', 3: 'motorcycle'}",
                "imgsz": "[480, 640]",
                "stride": "32",
                "task": "detect",
            }
        )
    )
    assert meta.names == ["person", "bicycle", "class 2", "motorcycle"]
    assert (meta.imgsz, meta.stride, meta.task, meta.ultralytics) == (
        [480, 640],
        32,
        "detect",
        True,
    )
    assert not meta.rt_detr and not meta.problems


def test_other_exporters_names_and_bad_values_are_reported_not_fatal():
    assert parse_names('["cat", "dog"]') == ["cat", "dog"]
    assert parse_names("cat, dog, bird") == ["cat", "dog", "bird"]
    assert parse_names('{"0": "cat", "1": "dog"}') == ["cat", "dog"]
    meta = read_metadata(_with_props({"classes": "__import__('os')", "imgsz": "huge"}))
    assert meta.names is None and meta.imgsz is None and len(meta.problems) == 2
    assert not meta.ultralytics  # nothing says so: no Ultralytics preprocessing
    assert read_metadata(_with_props({"description": "Ultralytics RT-DETR-l"})).rt_detr
    with pytest.raises(ValueError):
        parse_names("{-1: 'x'}")


def test_id_numbered_label_lines_are_placed_at_their_ids():
    assert indexed_labels(["0  person", "2  car", "3: bus"]) == ["person", "class 1", "car", "bus"]
    plain = ["person", "bicycle 2"]  # not every line starts with an id: kept as written
    assert indexed_labels(plain) == plain


def test_spec_saved_before_the_new_fields_loads_and_keeps_its_cache_key(tmp_path):
    pre = Preprocess(resize="letterbox", color="BGR", size=[416, 416])
    old = asdict(pre)
    del old["pad_center"], old["input_dtype"]  # a spec.json written before they existed
    data = {
        "path": "m.onnx",
        "sha256": "0" * 64,
        "task": "detection",
        "input_name": "images",
        "input_shape": [1, 3, 416, 416],
        "dynamic_size": False,
        "outputs": [],
        "preprocess": old,
        "postprocess": {"decoder": "yolox_raw", "strides": [8, 16, 32]},
    }
    spec = ModelSpec.from_dict(data)
    assert spec.preprocess.pad_center is False and spec.preprocess.input_dtype == "float32"
    assert spec.preprocess_key() == old  # cache keys of calibrations and variants unchanged
    spec.save(tmp_path / "spec.json")
    assert ModelSpec.load(tmp_path / "spec.json").postprocess.class_offset == 0
    centred = ModelSpec.from_dict({**data, "preprocess": {**old, "pad_center": True}})
    assert centred.preprocess_key() != old  # a centred letterbox is another input tensor


@needs_assets
def test_metadata_names_win_over_a_label_file_beside_the_model(tmp_path):
    (tmp_path / "labels.txt").write_text("cat\ndog\n")  # another model's two classes
    spec = inspect_model(build_layout("yolov8", tmp_path / "det.onnx"))
    assert len(spec.labels) == 80 and spec.labels[0] == "person"
    assert any("metadata used, not the label file" in n for n in spec.notes)
    assert not spec.problems


@needs_assets
def test_presets_still_decide_for_the_models_they_match():
    spec = inspect_model(YOLOX)
    assert spec.postprocess.decoder == "yolox_raw" and not spec.preprocess.pad_center
    assert spec.preset == "yolox-official.json"


def test_dynamic_uint8_nchw_classifier_takes_its_size_from_metadata(tmp_path):
    """uint8 [N, 3, H, W] with every size dynamic: fed unscaled; imgsz from metadata."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from app.backends.factory import make_runner
    from app.core.frames.pipeline import FramePipeline

    w = numpy_helper.from_array(np.eye(3, dtype=np.float32), "w")
    x = helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    nodes = [
        helper.make_node("Cast", ["pixels"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("GlobalAveragePool", ["f"], ["p"]),
        helper.make_node("Flatten", ["p"], ["v"]),
        helper.make_node("Gemm", ["v", "w"], ["logits"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    helper.set_model_props(model, {"imgsz": "[96, 128]", "names": "['red', 'green', 'blue']"})
    onnx.save(model, str(tmp_path / "rgb.onnx"))
    spec = inspect_model(tmp_path / "rgb.onnx")
    pre = spec.preprocess
    assert spec.task == "classification" and spec.labels == ["red", "green", "blue"]
    assert (pre.input_dtype, pre.layout, pre.size, pre.scale) == ("uint8", "NCHW", [96, 128], 1.0)
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[..., 0] = 200  # blue in BGR: the 'blue' logit is the raw mean, 200
    with make_runner("ort-cpu", spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        outputs, _, _ = pipe.infer_raw(frame)
    np.testing.assert_allclose(outputs[0][0], [0, 0, 200], atol=1e-3)
