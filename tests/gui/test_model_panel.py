"""Model panel: open the real YOLOX-Nano, see its spec, edit preprocessing, bad files inline."""

from __future__ import annotations

from app.gui.panels.model import ModelPanel
from app.gui.state import AppState


def test_open_real_model_shows_spec(qtbot, paths, make_panel):
    state = AppState()
    panel = make_panel(ModelPanel, state)
    panel.open_model(str(paths["model"]))
    qtbot.waitUntil(lambda: state.spec is not None, timeout=15000)
    assert state.spec.task == "detection"
    assert "yolox_nano.onnx" in panel.summary.text()
    assert panel.labels.count() == 80
    assert not panel.labels.item(0).icon().isNull()  # colour swatch
    assert panel.color.currentText() == "BGR"
    assert (panel.height.value(), panel.width.value()) == (416, 416)


def test_invalid_model_is_shown_inline(qtbot, tmp_path, make_panel):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx graph")
    panel = make_panel(ModelPanel, AppState())
    panel.open_model(str(bad))
    qtbot.waitUntil(lambda: panel.messages.has("model"), timeout=15000)
    assert "broken.onnx" in panel.messages.text("model")
    assert panel.state.spec is None


def test_edit_preprocessing_and_thresholds(qtbot, state, make_panel):
    panel = make_panel(ModelPanel, state)
    panel.std.setText("0, 1, 1")
    assert not panel.apply_edits()
    assert "std" in panel.messages.text("preprocess")
    panel.std.setText("1")
    panel.color.setCurrentText("RGB")
    panel.conf.setValue(0.5)
    assert panel.apply_edits(), panel.messages.text("preprocess")
    assert not panel.messages.has("preprocess")
    assert state.spec.preprocess.color == "RGB"
    assert state.spec.preprocess.std == [1.0, 1.0, 1.0]
    assert state.spec.postprocess.conf == 0.5
