"""`fp32-prep`, FP32 with the Focus stem folded (`prepared_fp32`): on YOLOX-Nano's real weights
the same outputs on real photos and the same mAP through `evaluate`; a model with nothing to fold
gets none, and a fold that changed the outputs is never written; `quantize` times it against
FP32 and `recommend` picks it only when it is measured faster."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from app.cli.main import main
from app.core.eval.recommend import recommend
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant import prepared_fp32
from app.core.quant.prepared_fp32 import NotPrepared, make_prepared_fp32
from app.core.quant.space_to_depth import fold_space_to_depth
from app.core.quant.variant_speed import prepared_beats_int8
from app.core.timing import speed_verdict
from tests.assets import (
    CIFAR,
    COCO_DEV64,
    RESNET8,
    YOLOX,
    YOLOX_ONNX,
    YOLOX_TUTORIAL,
    needs_assets,
)

PHOTOS = sorted((COCO_DEV64 / "images").glob("*.jpg"))[:3]


def _outputs(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(None, {name: x})[0] for x in feeds]


@needs_assets
def test_yolox_gets_its_stem_folded_and_gives_the_same_outputs_on_photos(tmp_path):
    out = tmp_path / "fp32-prep.onnx"
    record = make_prepared_fp32(YOLOX_ONNX, out)
    assert record["space_to_depth_folded"] == ["Conv_41"]
    assert 0 <= record["max_relative_diff"] < prepared_fp32.MAX_RELATIVE_DIFF
    assert record["differing_share"] == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert not [n for n in model.graph.node if n.op_type == "Slice"]  # the stem's eight Slices
    pre = Preprocessor(inspect_model(YOLOX).preprocess)
    feeds = [pre(read_image(p))[0] for p in PHOTOS]
    for want, got in zip(_outputs(YOLOX_ONNX, feeds), _outputs(out, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@needs_assets
@pytest.mark.parametrize("fed", ["its preprocessing", "pixels 0..255"])
def test_the_tutorial_export_whose_class_column_flips_on_a_tie_is_still_made(tmp_path, fed):
    """The tutorial-format YOLOX outputs an argmax class id per box, and where a box's two best
    classes tie within float rounding its id flips with the fold (up to 49 -> 0 on 0.1% of the
    values, fed 0..1 or pixels 0..255): not a wrong fold, and the variant was refused for it
    (found as a new user). Its boxes and scores still agree to float rounding."""
    pre = inspect_model(YOLOX_TUTORIAL).preprocess
    if fed == "pixels 0..255":
        pre = replace(pre, scale=1.0)
    record = make_prepared_fp32(next(YOLOX_TUTORIAL.glob("*.onnx")), tmp_path / "p.onnx", pre)
    assert record["space_to_depth_folded"] and record["differing_share"] == 0


@needs_assets
def test_nothing_to_fold_writes_nothing(tmp_path):
    out = tmp_path / "fp32-prep.onnx"
    with pytest.raises(NotPrepared, match="nothing to fold"):
        make_prepared_fp32(next(RESNET8.glob("*.onnx")), out)
    assert list(tmp_path.iterdir()) == []


@needs_assets
def test_a_fold_that_changes_the_outputs_is_never_written(tmp_path, monkeypatch):
    """A wrong fold (its new weight scaled, as a bug in the rewrite would) is caught by running
    the graph beside the model: refused, and no file or leftover is written."""

    def wrong_fold(model):
        folded, convs = fold_space_to_depth(model)
        weight = next(i for i in folded.graph.initializer if i.name.endswith("_space_to_depth_W"))
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.5, weight.name))
        return folded, convs

    monkeypatch.setattr(prepared_fp32, "fold_space_to_depth", wrong_fold)
    with pytest.raises(NotPrepared, match=r"changed \d+\.\d% of the output values"):
        make_prepared_fp32(YOLOX_ONNX, tmp_path / "fp32-prep.onnx")
    assert list(tmp_path.iterdir()) == []


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@needs_assets
def test_quantize_builds_and_times_it_and_evaluate_scores_it_as_fp32(capsys, tmp_path):
    root = tmp_path / "ws"
    argv = ["calibrate", "--model", YOLOX_ONNX, "--images", COCO_DEV64 / "images"]
    assert _run(capsys, *argv, "--workspace", root, "--count", 2, "--method", "minmax")[0] == 0
    code, out, err = _run(capsys, "quantize", "--workspace", root, "--precision", "fp32-prep")
    assert code == 0, err
    row = next(line.split() for line in out.splitlines() if line.startswith("fp32-prep "))
    assert row[1:4] == ["fp32", "any", "built"], out
    assert "prepared: fp32-prep: Focus stem folded into one strided conv" in out
    ws = Workspace.open(root)
    speed = ws.variant_meta("fp32-prep")["speed"]
    ratio = speed["int8_p50_ms"] / speed["fp32_p50_ms"]  # the timed variant's p50
    assert f"speed: {speed['verdict']}" in out and speed["ratio"] == round(ratio, 3)

    images = tmp_path / "eval"  # eight labelled photos the calibration did not use
    for sub in ("images", "labels"):
        (images / sub).mkdir(parents=True)
    for photo in sorted((COCO_DEV64 / "images").glob("*.jpg"))[-8:]:
        shutil.copy(photo, images / "images")
        shutil.copy(COCO_DEV64 / "labels" / f"{photo.stem}.txt", images / "labels")
    argv = ["evaluate", "--workspace", root, "--images", images / "images"]
    code, out, err = _run(capsys, *argv, "--variants", "fp32,fp32-prep")
    assert code == 0, err
    report = json.loads(ws.evaluation_path("ort-cpu").read_text())
    rows = {v["name"]: v for v in report["variants"]}
    assert rows["fp32-prep"]["metrics"]["mAP50_95"] == rows["fp32"]["metrics"]["mAP50_95"]
    assert rows["fp32-prep"]["metrics"]["agreement_mAP50_95"] == 100.0


@needs_assets
def test_a_model_without_a_focus_stem_says_why_it_gets_none(capsys, tmp_path):
    root = tmp_path / "ws"
    argv = ["calibrate", "--model", next(RESNET8.glob("*.onnx")), "--images", CIFAR / "cat"]
    assert _run(capsys, *argv, "--workspace", root, "--count", 2, "--method", "minmax")[0] == 0
    code, out, err = _run(capsys, "quantize", "--workspace", root, "--precision", "fp32-prep")
    assert code == 0, err
    assert "not made: fp32-prep: nothing to fold (no Focus stem)" in out
    assert not Workspace.open(root).variant_path("fp32-prep").exists()


def _row(name, score, ms):
    return {
        "name": name,
        "backend": "ort-cpu",
        "metrics": {"mAP50_95": score},
        "latency_ms": {"p50": ms},
    }


def _report(*rows):
    return {"task": "detection", "variants": list(rows)}


def test_recommended_only_when_measured_faster_than_fp32():
    same = _report(_row("fp32", 35.9, 10.0), _row("fp32-prep", 35.9, 9.8))
    assert recommend(same)[0].variant == "fp32"  # within the tie band: the model itself
    faster = _report(_row("fp32", 35.9, 10.0), _row("fp32-prep", 35.9, 9.0))
    (r,) = recommend(faster)
    assert r.variant == "fp32-prep" and "0.90x fp32's latency" in r.lines[0]


def test_an_int8_within_the_band_of_it_loses_the_tie_and_is_told_why():
    rep = _report(_row("fp32", 35.9, 10.0), _row("fp32-prep", 35.9, 9.0), _row("int8", 35.7, 8.7))
    (r,) = recommend(rep)
    assert r.variant == "fp32-prep"
    assert "int8 is 8.7 ms, within 5% of fp32-prep: a tie on a busy machine" in r.lines[1]


def test_an_exact_variant_that_is_not_faster_points_back_at_fp32():
    said = speed_verdict(1.01, "fp32-prep", "fp32", "ort-cpu", exact=True)
    assert said.endswith("use fp32") and "more accurate" not in said


def _timed(name, ratio):
    return {"name": name, "speed": {"ratio": ratio, "faster": ratio < 0.95}}


def test_quantize_says_when_int8_does_not_beat_the_prepared_fp32():
    said = prepared_beats_int8([_timed("int8", 1.01), _timed("fp32-prep", 0.90), {"name": "fp16"}])
    assert said.startswith("int8 1.01x against fp32-prep 0.90x fp32's latency")
    assert "use fp32-prep unless" in said
    assert prepared_beats_int8([_timed("int8", 0.80), _timed("fp32-prep", 0.90)]) is None
    assert prepared_beats_int8([_timed("int8", 1.01), _timed("fp32-prep", 0.99)]) is None
    assert prepared_beats_int8([_timed("int8", 1.01)]) is None
