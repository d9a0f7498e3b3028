"""COCO mAP of every YOLOX-derived layout, scored as the CLI's `evaluate` does, against the raw
model's: the decoders must lose nothing (slow: eight evaluations of 64 photos)."""

from __future__ import annotations

import inspect
from dataclasses import replace

import pytest

from app.backends.factory import make_runner
from app.core.eval.evaluate import evaluate
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from tests.assets import COCO_DEV64, YOLOX, needs_assets
from tests.core.model.derived_layouts import LAYOUTS, build_layout

pytestmark = [needs_assets, pytest.mark.slow]
SIGNATURE = inspect.signature(evaluate).parameters


def map50_95(spec, root) -> float:
    ws = Workspace.for_model(spec, root)
    # as the CLI calls it (main's evaluate takes the runner factory from its caller)
    factory = {"runner_factory": make_runner} if "runner_factory" in SIGNATURE else {}
    report = evaluate(ws, COCO_DEV64 / "images", variants=("fp32",), **factory)
    assert report["labelled"]
    return report["variants"][0]["metrics"]["mAP50_95"]


def test_derived_layouts_score_the_raw_models_map(tmp_path):
    raw = inspect_model(YOLOX)
    own = map50_95(raw, tmp_path / "ws-raw")
    # Ultralytics metadata asks for a centred letterbox; the raw weights fed those same pixels
    # are the reference the layouts must equal
    centred = replace(raw, preprocess=replace(raw.preprocess, pad_center=True))
    same_pixels = map50_95(centred, tmp_path / "ws-raw-centred")
    assert own > 30 and abs(same_pixels - own) < 1.0  # measured 35.90 and 35.39
    for kind in LAYOUTS:
        (tmp_path / kind).mkdir()
        spec = inspect_model(build_layout(kind, tmp_path / kind / f"yolox_{kind}.onnx"))
        score = map50_95(spec, tmp_path / f"ws-{kind}")
        assert abs(score - same_pixels) <= 0.1, (kind, score, same_pixels)
        assert abs(score - own) < 1.0, (kind, score, own)
