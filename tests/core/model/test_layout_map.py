"""COCO mAP of every YOLOX-derived layout, scored as the CLI's `evaluate` does, against the raw
model's: the decoders must lose nothing. Same weights and the same pixels give the same mAP50-95
within 0.1 (slow: sixteen evaluations of 64 photos)."""

from __future__ import annotations

import inspect
from dataclasses import replace

import pytest

from app.backends.factory import make_runner
from app.core.eval.evaluate import evaluate
from app.core.model.adapted_copy import write_adapted_copy
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from tests.assets import COCO_DEV64, YOLOX, needs_assets
from tests.core.model.derived_layouts import LAYOUTS, build_layout

pytestmark = [needs_assets, pytest.mark.slow]
SAME_DETECTIONS_AS = {
    "yolov8_seg": "yolov8",
    "yolov5_seg": "yolov5",
    "mmdeploy_seg": "mmdeploy",
    "batch_rows_nas": "batch_rows",
}
SIGNATURE = inspect.signature(evaluate).parameters


def map50_95(spec, root) -> float:
    ws = Workspace.for_model(spec, root)
    # as the CLI calls it (main's evaluate takes the runner factory from its caller)
    factory = {"runner_factory": make_runner} if "runner_factory" in SIGNATURE else {}
    report = evaluate(ws, COCO_DEV64 / "images", variants=("fp32",), **factory)
    assert report["labelled"]
    return report["variants"][0]["metrics"]["mAP50_95"]


def pad(spec, centred: bool):
    return replace(spec, preprocess=replace(spec.preprocess, pad_center=centred))


def test_derived_layouts_score_the_raw_models_map(tmp_path):
    raw = inspect_model(YOLOX)
    assert not raw.preprocess.pad_center  # YOLOX pads right and bottom
    own = map50_95(raw, tmp_path / "ws-raw")
    assert own > 30  # measured 35.90
    specs = {}
    # A layout that differs from another only by outputs no decoder reads (masks) or by a column
    # order the probe run settles finds the same detections (test_output_formats checks that on
    # every layout): scored once, by the layout it extends.
    for kind in [k for k in LAYOUTS if k not in SAME_DETECTIONS_AS]:
        (tmp_path / kind).mkdir()
        specs[kind] = spec = inspect_model(build_layout(kind, tmp_path / kind / f"{kind}.onnx"))
        # The layouts take RGB 0..1 where YOLOX takes BGR 0..255 (their input adapter undoes
        # it): fed the raw model's letterbox, each must score the raw model's own mAP.
        score = map50_95(pad(spec, False), tmp_path / f"ws-{kind}")
        assert abs(score - own) <= 0.1, (kind, score, own)
    # torchvision's kind: one image [3, H, W] in, boxes in input pixels, no metadata; opened
    # through the copy `adapt` writes and scored as guessed: RGB 0..1 letterboxed (torchvision's
    # detectors normalise inside), labels read as COCO category ids
    tv = build_layout("torchvision", tmp_path / "torchvision.onnx")
    spec = inspect_model(write_adapted_copy(tv).path)
    assert spec.postprocess.decoder == "boxes_labels_scores"
    assert not spec.postprocess.boxes_normalized, spec.notes
    # its labels are COCO category ids (1 = person, 13 = stop sign): read as such, by name
    assert spec.postprocess.class_offset == 1 and spec.labels[0] == "person", spec.notes
    assert spec.labels[12] == "stop sign"
    pre = spec.preprocess
    assert (pre.resize, pre.color, pre.scale, pre.mean, pre.std, pre.pad_center) == (
        "letterbox", "RGB", 1 / 255, [0.0] * 3, [1.0] * 3, False
    )  # fmt: skip
    score = map50_95(spec, tmp_path / "ws-torchvision")
    assert abs(score - own) <= 0.1, ("torchvision", score, own)
    # PaddleDetection's kind with its NMS: the picture's size is an input beside the image;
    # the copy computes it from the image, so boxes come out in input pixels and map back as
    # every other detector's do (same letterbox fed). (Its other size-input kinds compute
    # exactly the outputs of readings scored above: test_adapted_copy checks that.)
    paddle = build_layout("ppdet_nms", tmp_path / "ppdet_nms.onnx")
    spec = inspect_model(write_adapted_copy(paddle).path)
    assert spec.postprocess.decoder == "class_score_rows"
    spec.preprocess = replace(
        spec.preprocess, resize="letterbox", scale=1 / 255, mean=[0.0] * 3, std=[1.0] * 3,
        pad_center=False,
    )  # fmt: skip
    score = map50_95(spec, tmp_path / "ws-ppdet_nms")
    assert abs(score - own) <= 0.1, ("ppdet_nms", score, own)
    # Their Ultralytics metadata asks for a centred letterbox (read as such), which moves every
    # box onto other pixels: the raw model fed those pixels is then the reference (measured
    # 35.39), for a raw-grid decoder and an in-graph-NMS one.
    assert all(spec.preprocess.pad_center for spec in specs.values())
    centred = map50_95(pad(raw, True), tmp_path / "ws-raw-centred")
    for kind in ("yolov8", "end2end"):
        score = map50_95(specs[kind], tmp_path / f"ws-{kind}-own")
        assert abs(score - centred) <= 0.1, (kind, score, centred)
