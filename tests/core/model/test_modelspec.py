"""ModelSpec from the real models: task, layout, preprocessing and labels as their README says."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.core.errors import UserError
from app.core.model.inspection import inspect_model
from tests.conftest import HAGRID, MOBILENET, RESNET8, YOLOX, YOLOX_TUTORIAL, needs_assets
from tests.model_files import text_model, tiny_classifier

pytestmark = needs_assets


def test_yolox_official_is_letterbox_bgr_raw():
    spec = inspect_model(YOLOX)
    pre = spec.preprocess
    assert spec.task == "detection" and spec.postprocess.decoder == "yolox_raw"
    assert (pre.resize, pre.color, pre.scale, pre.pad_value, pre.size) == (
        "letterbox",
        "BGR",
        1.0,
        114,
        [416, 416],
    )
    assert len(spec.labels) == 80 and spec.labels[16] == "dog"
    assert spec.colors[0] == [242, 85, 85]  # from coco-colormap.json (0.95, 0.3325, 0.3325)


def test_tutorial_export_is_dynamic_rgb_over_255_and_norm_stats_not_reapplied():
    spec = inspect_model(YOLOX_TUTORIAL)
    pre = spec.preprocess
    assert spec.dynamic_size and pre.resize == "short_side_crop" and pre.color == "RGB"
    assert pre.scale == pytest.approx(1 / 255) and pre.mean == [0, 0, 0] and pre.std == [1, 1, 1]
    assert spec.postprocess.decoder == "boxes_xywh_cls_prob"
    assert any("not applied" in n for n in spec.notes)
    fixed = inspect_model(YOLOX_TUTORIAL, size=[320, 416])
    assert fixed.preprocess.size == [320, 416] and fixed.preprocess.short_side is None


def test_a_size_a_dynamic_model_cannot_take_is_refused_saying_what_to_choose():
    with pytest.raises(UserError, match=r"100x100, the size asked for, did not .*e\.g\. 128x128"):
        inspect_model(YOLOX_TUTORIAL, size=[100, 100])


def test_a_size_asked_of_a_fixed_size_model_is_said_unused():
    spec = inspect_model(YOLOX, size=[320, 320])
    assert spec.preprocess.size == [416, 416]
    assert "the size asked for, 320x320, is not used: this model's input is fixed at 416x416" in (
        spec.notes
    )
    assert not any("size asked for" in n for n in inspect_model(YOLOX, size=[416, 416]).notes)


def test_classifiers_layout_and_normalisation():
    mob = inspect_model(MOBILENET)
    assert mob.task == "classification" and mob.preprocess.layout == "NCHW"
    assert (
        mob.preprocess.mean == [0.5] * 3
        and len(mob.labels) == 1001
        and not mob.postprocess.apply_softmax
    )
    res = inspect_model(RESNET8)
    assert (
        res.preprocess.layout == "NHWC"
        and res.preprocess.scale == 1.0
        and res.preprocess.size == [32, 32]
    )
    assert res.labels[:2] == ["airplane", "automobile"]


def test_hagrid_detector_ignores_the_classifier_label_file_beside_it():
    spec = inspect_model(HAGRID)
    assert spec.postprocess.decoder == "boxes_labels_scores" and spec.labels == [
        "background",
        "hand",
    ]


def test_unknown_classifier_is_guessed_and_says_so(tmp_path):
    model = tiny_classifier(tmp_path / "net.onnx", classes=3)
    (tmp_path / "labels.txt").write_text("cat\ndog\n")  # one short
    spec = inspect_model(model)
    assert spec.task == "classification" and spec.postprocess.apply_softmax
    assert any("guessed" in n for n in spec.notes)
    # issue 15: a label file whose count is not the model's classes is not used, and says so
    problem = next(p for p in spec.problems if "labels.txt" in p)
    assert spec.labels == ["class 0", "class 1", "class 2"]
    assert "2 names" in problem and "3 classes" in problem and "not used" in problem


def test_sidecar_with_bad_json_is_reported_not_fatal(tmp_path):
    model = tiny_classifier(tmp_path / "net.onnx", classes=3)
    (tmp_path / "net-classes.json").write_text('{"classes": "not a list"}')
    (tmp_path / "norm_stats.json").write_text("{oops")
    spec = inspect_model(model)
    assert len(spec.problems) == 2 and all("ignored" in p for p in spec.problems)


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (
            lambda p: p.write_bytes((YOLOX / "yolox_nano.onnx").read_bytes()[:50_000]),
            "not a readable ONNX",
        ),
        (lambda p: p.write_text("this is not a model\n" * 50), "not a readable ONNX"),
        (lambda p: text_model(p), "not a vision model"),
        (
            lambda p: tiny_classifier(p, external_location="../../etc/passwd"),
            "outside the model folder",
        ),
        (lambda p: tiny_classifier(p, external_location="weights.bin"), "missing"),
    ],
    ids=["empty", "truncated", "not-onnx", "not-vision", "external-outside", "external-missing"],
)
def test_bad_models_are_refused_with_one_clear_line(tmp_path, make, expect):
    path = tmp_path / "model.onnx"
    make(path)
    with pytest.raises(UserError, match=expect) as err:
        inspect_model(path)
    assert str(path) in str(err.value)
    # and the CLI says it in one line, exit code 2, no traceback
    proc = subprocess.run(
        [sys.executable, "-m", "app", "inspect", "--model", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert expect in proc.stderr


def test_inspect_json_round_trips():
    proc = subprocess.run(
        [sys.executable, "-m", "app", "inspect", "--model", str(YOLOX), "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["input_name"] == "images" and data["postprocess"]["decoder"] == "yolox_raw"
