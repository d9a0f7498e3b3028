"""Model tab "Find preprocessing…" and the Results panel's collapse warning, on real models."""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.cli.main import main
from app.gui.panels.model import ModelPanel
from app.gui.panels.results import ResultsPanel
from app.gui.state import AppState
from tests.assets import CIFAR, IMAGES, MODELS, needs_assets
from tests.cli.test_find_preprocessing import misfed_workspace
from tests.core.model.unknown_copies import EFFICIENTNET_ONNX, RESNET8_ONNX, unknown_copy

pytestmark = needs_assets
SHOTS = (
    Path(os.environ.get("INT8_STUDIO_SHOTS", "")) if os.environ.get("INT8_STUDIO_SHOTS") else None
)


def _open(qtbot, make_panel, model: Path) -> ModelPanel:
    state = AppState()
    panel = make_panel(ModelPanel, state, size=(1300, 900))
    panel.open_model(str(model))
    qtbot.waitUntil(lambda: state.spec is not None, timeout=30000)
    assert state.spec.preset == ""  # a copy no preset knows
    return panel


def test_find_and_accept_on_nhwc_raw_classifier(qtbot, tmp_path, make_panel):
    panel = _open(qtbot, make_panel, unknown_copy(RESNET8_ONNX, tmp_path / "m"))
    finder = panel.finder
    assert panel.state.spec.preprocess.mean != [0.0, 0.0, 0.0]  # guessed: ImageNet mean/std
    assert not finder.accept_btn.isEnabled()
    finder.folder.setText(str(CIFAR))
    assert finder.choose_and_find()
    qtbot.waitUntil(lambda: finder.accept_btn.isEnabled(), timeout=60000)
    assert finder.table.rowCount() == 10
    marked = [r for r in range(10) if finder.table.item(r, 0).text().startswith("✔")]
    assert len(marked) == 1
    assert finder.table.item(marked[0], 1).text().startswith("raw 0..255, RGB")
    alarms = [finder.table.item(r, 7).text() for r in range(10)]
    assert "check preprocessing" in alarms  # the evidence shows the misfed candidates
    assert "raw 0..255, RGB" in finder.verdict.text()
    assert finder.accept_choice()
    pre = panel.state.spec.preprocess
    assert (pre.scale, pre.mean, pre.std, pre.color) == (1.0, [0.0] * 3, [1.0] * 3, "RGB")
    assert any("set by you" in n and "raw 0..255" in n for n in panel.state.spec.notes)
    assert not any("ImageNet mean/std assumed" in n for n in panel.state.spec.notes)
    assert panel.scale.value() == 1.0  # the form shows what was accepted
    assert "raw 0..255" in panel.summary.text()


def test_evidence_on_photos_screenshot(qtbot, tmp_path, make_panel):
    panel = _open(qtbot, make_panel, unknown_copy(EFFICIENTNET_ONNX, tmp_path / "m"))
    finder = panel.finder
    finder.folder.setText(str(IMAGES / "photos-misc103"))
    assert finder.choose_and_find()
    qtbot.waitUntil(lambda: finder.accept_btn.isEnabled(), timeout=120000)
    assert finder.table.rowCount() == 12
    chosen = next(r for r in range(12) if finder.table.item(r, 0).text())
    assert "127" in finder.table.item(chosen, 1).text()
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        assert panel.grab().save(str(SHOTS / "model-find-preprocessing.png"))
    assert finder.accept_choice()
    assert panel.state.spec.preprocess.mean[0] in (127.0, 127.5)


def test_another_model_clears_the_evidence(qtbot, tmp_path, make_panel, paths):
    panel = _open(qtbot, make_panel, unknown_copy(RESNET8_ONNX, tmp_path / "m"))
    panel.finder.folder.setText(str(CIFAR))
    panel.finder.choose_and_find()
    qtbot.waitUntil(lambda: panel.finder.accept_btn.isEnabled(), timeout=60000)
    panel.open_model(str(paths["model"]))
    qtbot.waitUntil(lambda: panel.state.spec.task == "detection", timeout=30000)
    assert panel.finder.table.rowCount() == 0 and not panel.finder.accept_btn.isEnabled()
    # a uint8 input takes pixels as they are: refused inline, with the reason
    panel.open_model(str(MODELS / "ssd-mobilenet-v2-coco"))
    qtbot.waitUntil(lambda: panel.state.spec.preprocess.input_dtype == "uint8", timeout=30000)
    panel.finder.find(str(CIFAR))
    qtbot.waitUntil(lambda: panel.messages.has("job"), timeout=30000)
    assert "uint8 input takes pixels as they are" in panel.messages.text("job")


def test_results_panel_warns_on_collapse(qtbot, tmp_path, make_panel, capsys):
    ws = misfed_workspace(tmp_path)
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--workspace", str(ws.root), "--images", str(CIFAR)]
    assert main([*argv, "--variants", "fp32", "--json", str(out)]) == 0
    panel = make_panel(ResultsPanel, AppState())
    assert panel.load(json.loads(out.read_text()))
    assert "check preprocessing: 99% of the images" in panel.messages.text("preprocessing")
    healthy = json.loads(out.read_text())
    healthy.pop("preprocessing_alarm")
    assert panel.load(healthy)
    assert not panel.messages.has("preprocessing")


def test_current_misfed_preprocessing_is_flagged_inline(qtbot, tmp_path, make_panel):
    panel = _open(qtbot, make_panel, unknown_copy(RESNET8_ONNX, tmp_path / "m"))
    # the user (wrongly) sets /255: ResNet-8 then answers one class for every image
    panel.scale.setValue(1 / 255)
    panel.mean.setText("0")
    panel.std.setText("1")
    assert panel.apply_edits()
    panel.finder.folder.setText(str(CIFAR))
    panel.finder.choose_and_find()
    qtbot.waitUntil(lambda: panel.finder.accept_btn.isEnabled(), timeout=60000)
    warning = panel.messages.text("preprocessing")
    assert "current preprocessing (/255, RGB" in warning and "check preprocessing: 100%" in warning
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        assert panel.grab().save(str(SHOTS / "model-find-preprocessing-alarm.png"))
    assert panel.finder.accept_choice()
    assert "set to raw 0..255" in panel.messages.text("preprocessing")
