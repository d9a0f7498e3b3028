"""Model tab corrections outlive re-opening the model; labels load and rename; a moved model
says its workspace followed it; a stale INT8 variant is refused until rebuilt or allowed
(real ResNet-8, real widgets)."""

from __future__ import annotations

import shutil

import pytest

from app.core.errors import UserError
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize
from app.gui.panels.model import ModelPanel
from app.gui.panels.variants import VariantsPanel
from app.gui.state import AppState
from tests.assets import IMAGES, RESNET8

CIFAR = IMAGES / "cifar10-test500"


@pytest.fixture
def model(tmp_path, assets):
    folder = tmp_path / "m"
    folder.mkdir()
    for path in RESNET8.iterdir():
        shutil.copy(path, folder / path.name)
    return folder / "resnet8_cifar10.onnx"


def _open(qtbot, make_panel, path):
    state = AppState()
    panel = make_panel(ModelPanel, state)
    panel.open_model(str(path))
    qtbot.waitUntil(lambda: state.spec is not None or panel.messages.has("model"), timeout=20000)
    return state, panel


def test_model_tab_corrections_survive_reopening(qtbot, make_panel, model, tmp_path):
    state, panel = _open(qtbot, make_panel, model)
    assert panel.color.currentText() == "RGB" and panel.labels.item(3).text() == "3: cat"
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"kind{i}" for i in range(10)))
    assert panel.labels_box.load_file(str(names))
    item = panel.labels.item(3)
    item.setText("3: kitty")  # as the inline editor commits a rename
    panel.color.setCurrentText("BGR")
    panel.mean.setText("5, 6, 7")
    assert panel.apply_edits(), panel.messages.text("preprocess")
    assert state.spec.labels[3] == "kitty" and state.spec.labels[0] == "kind0"
    # a new session opens the same model: inspection guesses again, the corrections win
    again, panel2 = _open(qtbot, make_panel, model)
    spec = again.spec
    assert spec.preprocess.color == "BGR" and spec.preprocess.mean == [5, 6, 7]
    assert spec.labels[3] == "kitty" and panel2.labels.item(3).text() == "3: kitty"
    assert panel2.color.currentText() == "BGR" and "set by you" in panel2.summary.text()


def test_label_file_with_wrong_count_is_refused_inline(qtbot, make_panel, model, tmp_path):
    _, panel = _open(qtbot, make_panel, model)
    two = tmp_path / "labels.txt"
    two.write_text("person\nnotperson\n")
    assert not panel.labels_box.load_file(str(two))
    text = panel.messages.text("labels")
    assert "labels.txt" in text and "2 names" in text and "10 classes" in text
    assert panel.labels.item(0).text() == "0: airplane"  # unchanged


def test_moved_model_note_in_the_model_tab(qtbot, make_panel, model, tmp_path):
    ws = Workspace.for_model(inspect_model(model), None)
    moved = tmp_path / "new" / "resnet-moved.onnx"
    moved.parent.mkdir()
    shutil.move(model, moved)
    state, panel = _open(qtbot, make_panel, moved)
    assert f"moved from {model}" in panel.summary.text()
    assert state.workspace().root == ws.root
    assert Workspace.open(ws.root).spec().path == str(moved)


def test_stale_int8_is_refused_until_rebuilt_or_allowed(qtbot, make_panel, model, tmp_path):
    images = tmp_path / "calib"
    images.mkdir()
    for path in sorted((CIFAR / "ship").glob("*.jpg"))[:6]:
        shutil.copy(path, images / path.name)
    state, _ = _open(qtbot, make_panel, model)
    ws = state.workspace()
    calibrate(ws, images, count=3)
    quantize(ws, precisions=["int8"])
    calibrate(ws, images, count=5)  # a newer calibration: the int8 graph is now stale
    state.variants_changed.emit()
    variants = make_panel(VariantsPanel, state)
    row = next(
        r for r in range(variants.table.rowCount()) if variants.table.item(r, 0).text() == "int8"
    )
    assert variants.table.item(row, 3).text() == "stale"
    assert "int8" in variants.messages.text("stale")
    with pytest.raises(UserError, match=r"stale variant 'int8'.*Rebuild"):
        state.variant_path("int8")
    variants.use_stale.setChecked(True)  # the user's explicit choice
    assert state.variant_path("int8").endswith("int8.onnx")
    variants.use_stale.setChecked(False)
    quantize(ws, precisions=["int8"])  # rebuilt from the latest calibration
    state.variants_changed.emit()
    assert state.variant_path("int8").endswith("int8.onnx")
    assert variants.table.item(row, 3).text() == "yes" and not variants.messages.has("stale")
