"""INT8 and FP16 of every YOLOX-derived detector layout end to end: calibrate, quantize, run on a
photo, evaluate. The layouts carry the same real weights, so each variant must score close to its
layout's FP32 (FP16 within noise; INT8 not collapsed), and the FP32s must all agree.
(slow: five layouts, each calibrated, quantized twice and evaluated three times.)"""

from __future__ import annotations

import pytest

from app.backends.factory import make_runner
from app.backends.onnxrt import OrtRunner
from app.core.eval.evaluate import evaluate
from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize
from tests.assets import COCO_DEV64, needs_assets
from tests.core.model.derived_layouts import build_layout
from tests.workspaces import copy_photos

pytestmark = [needs_assets, pytest.mark.slow]
KINDS = ("yolov8", "end2end", "efficient_nms", "tf_od", "detr")
PHOTO = COCO_DEV64 / "images" / "000000000785.jpg"  # a skier: person and skis


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """8 calibration photos (COCO train) and 16 labelled evaluation photos (COCO val)."""
    root = tmp_path_factory.mktemp("photos")
    calib, val = root / "calib", root / "val"
    calib.mkdir()
    val.mkdir()
    copy_photos(calib, 8)
    copy_photos(val, 16, COCO_DEV64 / "images")
    return calib, val


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, float]]:
    return {}  # FP32 mAP50-95 of each layout, filled as the layouts run


def _labels_on_photo(spec, model_path) -> set[str]:
    with OrtRunner(model_path) as runner:
        d = FramePipeline(spec, runner).process(read_image(PHOTO)).detections
    return {spec.label(int(c)) for c in d.class_ids[d.scores > 0.5]}


@pytest.mark.parametrize("kind", KINDS)
def test_layout_calibrates_quantizes_runs_and_evaluates(kind, folders, scores, tmp_path):
    calib, val = folders
    spec = inspect_model(build_layout(kind, tmp_path / f"yolox_{kind}.onnx"))
    ws = Workspace.for_model(spec, tmp_path / "ws")
    calibrate(ws, calib, method="minmax")
    built = {v["name"]: v for v in quantize(ws, precisions=["int8", "fp16"])}
    assert set(built) == {"int8", "fp16"} and not any(v.get("skipped") for v in built.values())
    seen = _labels_on_photo(spec, spec.path)
    assert "person" in seen, seen
    for name in ("int8", "fp16"):
        assert "person" in _labels_on_photo(spec, ws.variant_path(name)), (kind, name)
    report = evaluate(
        ws, val, labels_dir=COCO_DEV64 / "labels", variants=("fp32", "fp16", "int8"),
        runner_factory=make_runner,
    )  # fmt: skip
    assert report["labelled"] and report["images"] == 16
    m = {v["name"]: v["metrics"] for v in report["variants"]}
    fp32 = m["fp32"]["mAP50_95"]
    assert fp32 > 25, (kind, m)
    # FP16 of an in-graph NMS lost 8 points while its tail ran in FP16 (boxes offset by class)
    assert abs(m["fp16"]["mAP50_95"] - fp32) <= 0.5, (kind, m)
    assert m["fp16"]["matched_fp32"] >= 95, (kind, m)  # percent
    assert m["int8"]["mAP50_95"] >= fp32 - 5 and m["int8"]["matched_fp32"] >= 70, (kind, m)
    scores[kind] = {name: metrics["mAP50_95"] for name, metrics in m.items()}
    fp32s = {k: s["fp32"] for k, s in scores.items()}
    assert max(fp32s.values()) - min(fp32s.values()) <= 0.1, fp32s  # same weights, same pixels
