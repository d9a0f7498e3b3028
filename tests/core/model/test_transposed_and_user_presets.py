"""A YOLOX export whose raw grid ends in a Transpose ([1, 85, A]) reads as the raw grid and finds
the raw model's detections, fused or not; a preset matched only by input/output names is dropped
when the outputs do not read as its layout (it used to decode them as YOLOX with 3544 classes);
and the user's own presets decide what inspection cannot, or are refused naming the file.

The models are made from the real YOLOX-Nano COCO weights (`derived_layouts`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.backends.onnxrt import OrtRunner
from app.core.errors import UserError
from app.core.frames.graph_fusion import fused_model_path
from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.model.inspection import inspect_model
from app.core.model.presets import user_presets_dir
from tests.assets import IMAGES, YOLOX, needs_assets
from tests.core.model.yolox_grid_exports import build_transposed_yolox, build_unreadable_yolox

pytestmark = needs_assets
PHOTOS = [IMAGES / "photos-misc103" / n for n in ("dog_3.jpg",)] + sorted(
    (IMAGES / "coco-val-dev64" / "images").glob("*.jpg")
)[:3]


def detections(model_path: Path, spec, fused: bool, tmp_path: Path) -> list[dict]:
    path = fused_model_path(model_path, spec, tmp_path) if fused else model_path
    out = []
    with OrtRunner(path) as runner:
        pipe = FramePipeline(spec, runner, fused=fused)
        for photo in PHOTOS:
            out.append(pipe.process(read_image(photo)).to_json(spec)["detections"])
    return out


def same(a: list[list[dict]], b: list[list[dict]]) -> None:
    assert sum(len(x) for x in a) > 5  # the photos have things in them
    for x, y in zip(a, b):
        assert [d["class_id"] for d in x] == [d["class_id"] for d in y]
        for d, e in zip(x, y):
            assert abs(d["score"] - e["score"]) < 1e-3
            assert np.allclose(d["box"], e["box"], atol=0.5)


@pytest.mark.parametrize("output_name", ["output", "dets"])
def test_transposed_raw_grid_finds_the_raw_models_detections(tmp_path, output_name):
    model = build_transposed_yolox(tmp_path / "yolox_t.onnx", output_name)
    spec = inspect_model(model)
    assert spec.postprocess.decoder == "yolox_raw" and spec.postprocess.transposed
    assert len(spec.labels) == 80 and not spec.problems
    assert spec.preprocess.color == "BGR" and spec.preprocess.scale == 1.0  # YOLOX's own input
    raw = inspect_model(YOLOX)
    reference = detections(Path(raw.path), raw, False, tmp_path)
    same(detections(model, spec, False, tmp_path), reference)
    same(detections(model, spec, True, tmp_path), reference)  # fused I/O transposes in-graph


def test_names_only_preset_is_dropped_when_the_outputs_do_not_read_as_it(tmp_path):
    model = build_unreadable_yolox(tmp_path / "unreadable.onnx")
    with pytest.raises(UserError) as err:
        inspect_model(model)
    text = str(err.value)
    assert "cannot tell what the outputs mean" in text and "[1, 255, 1183]" in text
    assert str(user_presets_dir()) in text and "yolox_raw" in text  # where and what to write


def test_user_preset_names_the_decoder_and_wins_over_the_bundled_one(tmp_path):
    model = build_unreadable_yolox(tmp_path / "unreadable.onnx")
    with pytest.raises(UserError) as err:
        inspect_model(model)
    sha = str(err.value).split('"sha256": ["')[1].split('"')[0]  # the message names the hash
    folder = user_presets_dir()
    folder.mkdir(parents=True)
    (folder / "mine.json").write_text(
        json.dumps(
            {
                "name": "my reshaped head",
                "match": {"sha256": [sha]},
                "task": "detection",
                "postprocess": {"decoder": "yolov8", "transposed": True},
            }
        )
    )
    spec = inspect_model(model)
    assert spec.postprocess.decoder == "yolov8" and spec.postprocess.transposed
    assert spec.preset == str(folder / "mine.json")
    assert any("my reshaped head" in n and "file hash" in n for n in spec.notes)
    # a user preset for official YOLOX's hash comes before the bundled one
    yolox_sha = inspect_model(YOLOX).sha256
    (folder / "yolox.json").write_text(
        json.dumps({"match": {"sha256": [yolox_sha]}, "postprocess": {"decoder": "yolox_raw"},
                    "labels_fallback": "coco80", "task": "detection",
                    "preprocess": {"resize": "letterbox", "color": "BGR", "pad_value": 0}})
    )  # fmt: skip
    spec = inspect_model(YOLOX)
    assert spec.preset == str(folder / "yolox.json") and spec.preprocess.pad_value == 0


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not a readable preset JSON"),
        ('{"match": {}}', '"match" needs "sha256"'),
        ('{"match": {"sha256": ["x"]}, "postprocess": {"decoder": "yolo9000"}}', "yolo9000"),
        ('{"match": {"sha256": ["x"]}, "preprocess": {"colour": "RGB"}}', '"preprocess" may only'),
        ('{"match": {"sha256": ["x"]}, "preprocess": {"mean": 0.5}}', "must be a list of numbers"),
        ('{"match": {"sha256": ["x"]}, "postprocess": {"transposed": "yes"}}', "true or false"),
    ],
)
def test_a_broken_user_preset_is_skipped_with_a_warning_naming_the_file(tmp_path, text, why):
    """It must not stop every other model from opening: the bundled preset still applies."""
    folder = user_presets_dir()
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text(text)
    spec = inspect_model(YOLOX)
    assert spec.preset == "yolox-official.json"
    warning = next(p for p in spec.problems if str(folder / "broken.json") in p)
    assert why in warning and "fix or remove it" in warning and "(skipped)" in warning


def test_a_user_preset_whose_decoder_does_not_fit_fails_in_one_line(tmp_path):
    """A preset matched by hash is trusted at inspection; run then says the outputs do not fit
    its decoder, naming the model and what to do, instead of a traceback."""
    from tests.reliability.helpers import assert_one_line_error, cli

    model = build_unreadable_yolox(tmp_path / "unreadable.onnx")
    with pytest.raises(UserError) as err:
        inspect_model(model)
    sha = str(err.value).split('"sha256": ["')[1].split('"')[0]
    folder = user_presets_dir()
    folder.mkdir(parents=True)
    (folder / "wrong.json").write_text(
        json.dumps({"match": {"sha256": [sha]}, "postprocess": {"decoder": "boxes_labels_scores"}})
    )
    photo = str(IMAGES / "photos-misc103" / "dog_3.jpg")
    proc = cli("run", "--model", str(model), "--source", photo)
    assert_one_line_error(proc, str(model), "do not fit the boxes_labels_scores decoder", "preset")


def test_a_user_preset_naming_only_a_decoder_keeps_ultralytics_preprocessing(tmp_path):
    """Ultralytics exports say their preprocessing in their metadata (letterbox centred, pad
    114, RGB, /255); a preset that only names the decoder, as inspection's refusal suggests,
    used to reset it to a top-left letterbox while the notes still said centred."""
    from tests.core.model.derived_layouts import build_layout

    model = build_layout("yolov8_seg", tmp_path / "seg.onnx")
    sha = inspect_model(model).sha256
    folder = user_presets_dir()
    folder.mkdir(parents=True)
    preset = {"match": {"sha256": [sha]}, "task": "detection", "postprocess": {"decoder": "yolov8"}}
    (folder / "mine.json").write_text(json.dumps(preset))
    spec = inspect_model(model)
    pre = spec.preprocess
    assert spec.preset.endswith("mine.json")
    assert (pre.resize, pre.pad_center, pre.pad_value, pre.color) == ("letterbox", True, 114, "RGB")
    assert pre.scale == pytest.approx(1 / 255)
    # what the preset says still wins
    preset["preprocess"] = {"pad_center": False}
    (folder / "mine.json").write_text(json.dumps(preset))
    assert inspect_model(model).preprocess.pad_center is False
