"""Preprocessing found on ~32 of the user's images, for real classifiers no preset describes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.core.errors import UserError
from app.core.eval.labels import class_labels
from app.core.eval.preprocess_finder import find_preprocessing
from app.core.eval.preprocess_search import (
    collapse_alarm,
    mirror_agreement,
    sample,
    search_preprocessing,
)
from app.core.eval.search_report import read_images
from app.core.frames.postprocess import Detections
from app.core.frames.sources import list_images
from app.core.model.inspection import inspect_model
from app.core.model.spec import ModelSpec
from tests.assets import CIFAR, HAGRID, IMAGES, YOLOX_ONNX, YOLOX_TUTORIAL, needs_assets
from tests.core.model.unknown_copies import (
    EFFICIENTNET_ONNX,
    RESNET8_ONNX,
    div255_resnet8,
    resaved,
    unknown_copy,
)

pytestmark = needs_assets
CIFAR_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def _unpreset(path: Path) -> ModelSpec:
    spec = inspect_model(path)
    assert spec.preset == "", "the copy must not be recognised by a preset"
    return spec


def _found(spec: ModelSpec, folder: Path, labelled: bool = False):
    images, paths = read_images(sample(list_images(folder)))
    assert len(images) == 32
    truth = class_labels(CIFAR_NAMES, paths, folder).truth if labelled else None
    return search_preprocessing(spec, images, truth)


def test_nhwc_raw_classifier_found_without_labels(tmp_path: Path) -> None:
    spec = _unpreset(unknown_copy(RESNET8_ONNX, tmp_path / "m"))
    # what the app guesses with nothing to go on: ImageNet mean/std, which misfeeds ResNet-8
    assert spec.preprocess.std != [1.0, 1.0, 1.0]
    result = _found(spec, CIFAR)
    choice = result.choice
    assert choice.candidate.norm == "raw 0..255"
    assert choice.alarm == "" and choice.top_share < 0.5
    # every candidate is reported; the ImageNet guess was among the misfed ones
    assert len(result.evidence) == 10
    imagenet = [e for e in result.evidence if e.candidate.norm == "ImageNet mean/std"]
    assert max(e.score for e in imagenet) < choice.score / 2


def test_labelled_search_picks_by_accuracy(tmp_path: Path) -> None:
    spec = _unpreset(unknown_copy(RESNET8_ONNX, tmp_path / "m"))
    result = _found(spec, CIFAR, labelled=True)
    assert result.labelled == 32 and result.notes[0].startswith("chosen by accuracy")
    choice = result.choice
    assert (choice.candidate.norm, choice.candidate.color) == ("raw 0..255", "RGB")
    assert choice.accuracy is not None and choice.accuracy >= 0.55
    assert all(e.accuracy is not None and e.accuracy <= choice.accuracy for e in result.evidence)
    # /255 feeds ResNet-8 near-black images: one class for all, accuracy near chance
    div = next(e for e in result.evidence if e.candidate.norm == "/255")
    assert "check preprocessing" in div.alarm


def test_div255_model_found(tmp_path: Path) -> None:
    spec = _unpreset(div255_resnet8(tmp_path / "m"))
    result = _found(spec, CIFAR)
    assert result.choice.candidate.norm == "/255"
    raw = next(e for e in result.evidence if e.candidate.norm == "raw 0..255")
    assert raw.score < result.choice.score


def test_minus127_over128_model_found_on_photos(tmp_path: Path) -> None:
    spec = _unpreset(unknown_copy(EFFICIENTNET_ONNX, tmp_path / "m"))
    result = _found(spec, IMAGES / "photos-misc103")
    choice = result.choice
    # (x-127)/128 and (x-127.5)/127.5 feed the same pixels to within 0.4%: either is right
    assert choice.candidate.norm in ("(x-127)/128", "(x-127.5)/127.5")
    assert choice.candidate.color == "RGB"
    # photos are not square: the other resize modes were tried for the winning scaling
    assert {e.candidate.resize for e in result.evidence} == {"resize_crop", "letterbox", "stretch"}
    assert len(result.evidence) == 12


def test_misfed_model_raises_collapse_alarm(tmp_path: Path) -> None:
    spec = _unpreset(div255_resnet8(tmp_path / "m"))
    # fed raw 0..255 (as the unwrapped model wants): 255x too bright, one class for all
    result = _found(spec, CIFAR, labelled=True)
    raw = next(
        e
        for e in result.evidence
        if e.candidate.norm == "raw 0..255" and e.candidate.color == "RGB"
    )
    assert raw.alarm.startswith("check preprocessing"), raw.row()


def test_collapse_alarm_thresholds() -> None:
    assert "90% of the images" in collapse_alarm(0.9, 10)
    assert collapse_alarm(0.89, 10) == ""
    assert "near chance" in collapse_alarm(0.2, 10, accuracy=0.15)
    assert collapse_alarm(0.2, 10, accuracy=0.16) == ""
    assert collapse_alarm(1.0, 1) == ""


def test_detector_without_a_decoder_is_refused_with_a_reason(assets: Path) -> None:
    spec = inspect_model(assets / "models" / "yolox-nano-coco")
    with pytest.raises(UserError, match="works on classifiers and decoded detectors"):
        search_preprocessing(spec, [], None)


def test_detector_preprocessing_found_on_coco_photos(tmp_path: Path) -> None:
    """YOLOX-Nano (BGR 0..255) under another input name: the misfed candidates find nothing."""
    spec = _unpreset(unknown_copy(YOLOX_ONNX, tmp_path / "m"))
    # what the guess would be without YOLOX's decoder convention
    spec.preprocess = replace(spec.preprocess, scale=1 / 255, color="RGB")
    result = find_preprocessing(spec, IMAGES / "coco-val-dev64")
    choice = result.choice
    assert (choice.candidate.norm, choice.candidate.color) == ("raw 0..255", "BGR")
    assert choice.found_share >= 0.9 and choice.alarm == ""
    div = next(e for e in result.evidence if e.candidate.norm == "/255")
    assert div.alarm.startswith("check preprocessing: nothing found")


def test_confident_boxes_the_mirror_does_not_repeat_are_misfeeding() -> None:
    """The tutorial YOLOX export (x/255 expected; normalisation in the graph) fed 0..255 finds
    ~140 confident boxes per photo: by count and confidence it looked best (it was chosen,
    before the mirror check). Its boxes are not found again in the mirrored input."""
    spec = inspect_model(YOLOX_TUTORIAL)
    spec.preprocess = replace(spec.preprocess, size=[256, 320])  # fewer pixels, same finding
    result = find_preprocessing(spec, IMAGES / "photos-misc103")
    choice = result.choice
    assert (choice.candidate.norm, choice.candidate.color) == ("/255", "RGB"), choice.candidate
    assert choice.alarm == "" and (choice.mirror_agreement or 0) >= 0.8
    raw = next(e for e in result.evidence if e.candidate.norm == "raw 0..255")
    assert raw.objects > 20 * choice.objects and raw.mean_confidence > choice.mean_confidence
    assert raw.alarm.startswith("check preprocessing: only") and "mirrored" in raw.alarm
    # the preset's own resize is tried first; a detector is never offered the classifiers'
    # crop (it would cut off objects at the edges, which no unlabelled score sees)
    modes = [e.candidate.resize for e in result.evidence]
    assert modes[0] == "short_side_crop" and "resize_crop" not in modes
    assert set(modes) == {"short_side_crop", "letterbox", "stretch"}


def test_thin_evidence_is_said() -> None:
    """HaGRID's hand detector on photos with few hands: whatever wins, the note says the
    evidence is thin and what to try; the raw 0..255 candidates' phantom hands are alarmed."""
    result = find_preprocessing(inspect_model(HAGRID), IMAGES / "photos-misc103")
    assert any(n.startswith("thin evidence") for n in result.notes), result.notes
    raw = [e for e in result.evidence if e.candidate.norm == "raw 0..255"]
    assert raw and all(e.alarm and (e.mirror_agreement or 0) < 0.25 for e in raw)


def test_mirror_agreement_flips_boxes_back() -> None:
    one = Detections(
        np.array([[10, 20, 50, 60], [100, 0, 120, 30]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.array([1, 2]),
    )
    width = 200
    mirrored = one.boxes.copy()
    mirrored[:, [0, 2]] = width - one.boxes[:, [2, 0]]
    mirror = Detections(mirrored, one.scores, one.class_ids)
    assert mirror_agreement([one], [mirror], width) == 1.0
    # the same boxes not flipped (what a detector seeing things gives) do not agree
    assert mirror_agreement([one], [one], width) == 0.0
    # another class at the same place does not count; empty pairs of views are left out
    other = Detections(mirrored, one.scores, np.array([1, 3]))
    assert mirror_agreement([one, Detections()], [other, Detections()], width) == 0.5
    assert mirror_agreement([Detections()], [Detections()], width) == 0.0


def test_presets_match_a_reexport_by_graph_structure(tmp_path: Path) -> None:
    copy = resaved(RESNET8_ONNX, tmp_path / "m")
    spec = inspect_model(copy)
    assert spec.sha256 != inspect_model(RESNET8_ONNX).sha256
    assert spec.preset == "resnet8-cifar10.json"
    assert any("matched by graph structure" in n for n in spec.notes)
    assert (spec.preprocess.scale, spec.preprocess.std) == (1.0, [1, 1, 1])
    original = inspect_model(RESNET8_ONNX)
    assert any("matched by file hash" in n for n in original.notes)
    # another input name: another exporter's network, the structure no longer vouches for it
    assert inspect_model(unknown_copy(RESNET8_ONNX, tmp_path / "u")).preset == ""


def test_minus127_over128_model_found_by_labels(tmp_path: Path) -> None:
    """EfficientNet-Lite0 with its class names (labels are not preprocessing) on the ImageNet
    samples' CSV: ten images, so the choice weighs the right class's probability too."""
    folder = tmp_path / "m"
    copy = unknown_copy(EFFICIENTNET_ONNX, folder)
    (folder / "imagenet_classes.txt").write_bytes(
        (EFFICIENTNET_ONNX.parent / "imagenet_classes.txt").read_bytes()
    )
    spec = _unpreset(copy)
    assert len(spec.labels) == 1000 and spec.labels[0] != "class 0"
    samples = IMAGES / "imagenet-samples"
    images, paths = read_images(sample(list_images(samples)))
    truth = class_labels(spec.labels, paths, samples).truth
    result = search_preprocessing(spec, images, truth)
    assert result.labelled >= 9
    choice = result.choice
    assert choice.candidate.norm in ("(x-127)/128", "(x-127.5)/127.5")
    assert choice.candidate.color == "RGB" and choice.accuracy >= 0.75
    raw = next(e for e in result.evidence if e.candidate.norm == "raw 0..255")
    assert raw.accuracy <= 0.15
