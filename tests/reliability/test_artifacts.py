"""Reliability (issue 8), artifacts: calibration tables and Q/DQ graphs that are truncated, come
from another model, or from another version of the app are detected by key or hash, then rebuilt
or refused with a message, never silently used. (TensorRT engine records are covered in
tests/backends/tensorrt/;
their hostile side files in test_security.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import app.core.quant.calibration as calibration_mod
import app.core.quant.quantize as quantize_mod
from app.backends.factory import make_runner
from app.core.errors import UserError
from app.core.eval.evaluate import evaluate
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.quantize import quantize
from tests.conftest import IMAGES, RESNET8, needs_assets
from tests.reliability.helpers import (
    assert_one_line_error,
    cli,
    copy_images,
    copy_model_folder,
    retrained_copy,
    temp_leftovers,
)

pytestmark = needs_assets
CIFAR = IMAGES / "cifar10-test500"


@pytest.fixture
def images(tmp_path) -> Path:
    for cls in ("cat", "ship"):
        copy_images(sorted((CIFAR / cls).glob("*.jpg"))[:3], tmp_path / "images" / cls)
    return tmp_path / "images"


def _workspace(model_folder: Path, root: Path, images: Path, *, int8: bool = True) -> Workspace:
    model = copy_model_folder(model_folder, root / "model")
    ws = Workspace.for_model(inspect_model(model), root / "ws")
    calibrate(ws, images, method="minmax")
    if int8:
        quantize(ws, precisions=["int8"])
    return ws


@pytest.fixture
def ws(tmp_path, images) -> Workspace:
    return _workspace(RESNET8, tmp_path / "a", images)


@pytest.fixture
def other_ws(tmp_path, images) -> Workspace:
    """A re-trained ResNet-8: same tensor names, other weights, its own workspace."""
    model = retrained_copy(RESNET8, tmp_path / "b" / "model")
    ws = Workspace.for_model(inspect_model(model), tmp_path / "b" / "ws")
    calibrate(ws, images, method="minmax")
    quantize(ws, precisions=["int8"])
    return ws


# ---------------------------------------------------------------------------------------------
# calibration tables
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["calibration.cache", "calibration_trt.cache", "ranges.json", "meta.json"]
)
def test_truncated_calibration_file_is_detected_and_rebuilt_saying_damaged(ws, images, name):
    folder = latest_calibration(ws)
    target = folder / name
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    result = calibrate(ws, images, method="minmax")
    assert not result.reused and result.folder == folder
    assert f"cached calibration {result.key} was damaged and has been rebuilt" in result.warnings
    assert latest_calibration(ws) == folder
    assert temp_leftovers(ws.root) == []


def test_truncated_ranges_make_quantize_say_calibration_damaged_run_calibrate_again(ws):
    folder = latest_calibration(ws)
    (folder / "ranges.json").write_text('{"conv2d": [0.0, ')
    with pytest.raises(UserError, match=r"calibration is missing or damaged; run `calibrate`"):
        quantize(ws, precisions=["int8"], target="tensorrt")
    proc = cli(
        "quantize", "--workspace", str(ws.root), "--precision", "int8", "--target", "tensorrt"
    )
    assert_one_line_error(proc, str(folder), "calibration is missing or damaged")
    assert not ws.variant_path("int8-trt").exists()


def test_calibration_from_another_calibration_version_is_not_reused(ws, images, monkeypatch):
    old = latest_calibration(ws)
    monkeypatch.setattr(calibration_mod, "CALIBRATION_VERSION", 999)
    result = calibrate(ws, images, method="minmax")
    assert not result.reused and result.folder != old
    assert latest_calibration(ws) == result.folder


def test_calibration_copied_from_another_model_is_refused_by_quantize(ws, other_ws):
    theirs = latest_calibration(other_ws)
    shutil.copytree(theirs, ws.root / "calibration" / theirs.name)
    shutil.copy(other_ws.root / "calibration" / "latest.json", ws.root / "calibration")
    with pytest.raises(UserError, match="another model"):
        quantize(ws, precisions=["int8"], target="tensorrt")


# ---------------------------------------------------------------------------------------------
# Q/DQ graphs
# ---------------------------------------------------------------------------------------------
def test_truncated_int8_graph_is_refused_by_evaluate_and_rebuilt_by_quantize(ws, images):
    graph = ws.variant_path("int8")
    graph.write_bytes(graph.read_bytes()[:2000])
    with pytest.raises(
        UserError,
        match=r"variant 'int8' is missing or damaged in .*; run "
        r"`int8-studio quantize` to \(re\)build it",
    ):
        evaluate(ws, images, variants=["fp32", "int8"], runner_factory=make_runner)
    proc = cli(
        "evaluate", "--workspace", str(ws.root), "--images", str(images), "--variants", "int8"
    )
    assert_one_line_error(proc, "variant 'int8' is missing or damaged", str(ws.root))
    meta = quantize(ws, precisions=["int8"])[0]
    assert meta["reused"] is False and ws.valid_variant("int8")
    assert (
        evaluate(ws, images, variants=["int8"], runner_factory=make_runner)["variants"][0]["name"]
        == "int8"
    )


def test_int8_graph_with_its_record_deleted_is_rebuilt_not_trusted(ws):
    ws.variant_meta_path("int8").unlink()
    assert not ws.valid_variant("int8")
    assert quantize(ws, precisions=["int8"])[0]["reused"] is False


def test_variant_from_another_quantize_version_is_rebuilt(ws, monkeypatch):
    before = ws.variant_meta("int8")["key"]
    monkeypatch.setattr(quantize_mod, "QUANTIZE_VERSION", 999)
    meta = quantize(ws, precisions=["int8"])[0]
    assert meta["reused"] is False and meta["key"] != before


def test_int8_graph_from_another_model_is_rebuilt_by_quantize(ws, other_ws):
    for path in (other_ws.variant_path("int8"), other_ws.variant_meta_path("int8")):
        shutil.copy(path, ws.root / "variants" / path.name)
    assert quantize(ws, precisions=["int8"])[0]["reused"] is False  # key names the model


def test_int8_graph_from_another_model_is_refused_by_evaluate(ws, other_ws, images):
    for path in (other_ws.variant_path("int8"), other_ws.variant_meta_path("int8")):
        shutil.copy(path, ws.root / "variants" / path.name)
    with pytest.raises(UserError, match="another model"):
        evaluate(ws, images, variants=["int8"], runner_factory=make_runner)


def test_workspace_of_another_model_is_refused_naming_both(ws, other_ws):
    spec = inspect_model(Path(other_ws.spec().path))
    with pytest.raises(
        UserError,
        match=r"belongs to another model \(resnet8_cifar10.onnx\); "
        r"choose another workspace folder",
    ):
        Workspace.for_model(spec, ws.root)
