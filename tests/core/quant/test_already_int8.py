"""A model that already holds Q/DQ nodes (the COCO SSD converted from a quantised TFLite model) is
recognised as INT8: inspection says so, and quantize makes no int8 variant of it (quantizing it
again made a graph 1.26x slower than the model itself), while FP16 and the rest still work."""

from __future__ import annotations

import pytest

from app.cli.main import main
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize
from tests.assets import COCO_DEV64, MODELS, RESNET8, needs_assets

pytestmark = needs_assets
SSD = MODELS / "ssd-mobilenet-v2-coco"


def test_a_qdq_model_is_said_to_be_int8_already():
    notes = " ".join(inspect_model(SSD).notes)
    assert "already INT8" in notes and "quantization nodes" in notes
    assert "already INT8" not in " ".join(inspect_model(RESNET8).notes)


@pytest.fixture(scope="module")
def ssd_ws(tmp_path_factory):
    ws = Workspace.for_model(inspect_model(SSD), tmp_path_factory.mktemp("ssd") / "ws")
    calibrate(ws, COCO_DEV64 / "images", count=4, method="minmax")
    return ws


def test_calibrating_it_says_its_ranges_make_no_variant(ssd_ws):
    """Not "only 4 calibration images; about 200 or more ... give steadier INT8 ranges": no
    variant is made from these ranges."""
    result = calibrate(ssd_ws, COCO_DEV64 / "images", count=4, method="minmax")  # the fixture's
    assert result.reused
    assert [w for w in result.warnings if "already INT8" in w and "these ranges make none" in w]
    assert not [w for w in result.warnings if "steadier INT8 ranges" in w]
    fresh = calibrate(ssd_ws, COCO_DEV64 / "images", count=3, method="minmax")
    assert not fresh.reused and "these ranges make none" in " ".join(fresh.warnings)


def test_quantize_makes_no_int8_of_an_int8_model(ssd_ws):
    out = {v["name"]: v for v in quantize(ssd_ws, precisions=["int8", "fp16"])}
    assert "already INT8" in out["int8"]["skipped"]
    assert not ssd_ws.variant_path("int8").exists()
    assert out["fp16"].get("reused") is False and ssd_ws.valid_variant("fp16")


def test_the_cli_says_why_no_int8_was_made(ssd_ws, capsys):
    assert main(["quantize", "--workspace", str(ssd_ws.root), "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert "not made: int8:" in out and "already INT8" in out


def test_its_fp16_variant_loads_and_finds_what_it_finds(ssd_ws, tmp_path):
    """The converter used to turn the Q/DQ scales into FP16, which the model's opset refuses:
    the file was written and recorded, then failed to load in evaluate and bench."""
    import shutil

    from app.backends.factory import make_runner
    from app.core.eval.evaluate import evaluate

    quantize(ssd_ws, precisions=["fp16"])
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in sorted((COCO_DEV64 / "images").glob("*.jpg"))[:8]:
        shutil.copy(photo, photos / photo.name)
    report = evaluate(ssd_ws, photos, variants=["fp32", "fp16"], runner_factory=make_runner)
    fp16 = next(v for v in report["variants"] if v["name"] == "fp16")
    # its detections are FP32's (mAP50 against FP32's own boxes; measured 100 on 64 photos)
    assert fp16["metrics"]["agreement_mAP50"] >= 95.0, fp16["metrics"]
