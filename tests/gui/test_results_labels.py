"""Results panel with a classifier (real ResNet-8 on CIFAR-10 images): the Labels field takes a
file,class CSV from anywhere, the fallback to agreement says why, the scatter starts on the
labelled metric with a plain millisecond axis; file dialogs start where the user was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.gui.panels.results import ResultsPanel
from tests.assets import CIFAR, RESNET8

PER_CLASS = 2


@pytest.fixture
def resnet_state(tmp_path, assets):
    from app.core.model.inspection import inspect_model
    from app.gui.state import AppState

    st = AppState(workspace_root=tmp_path / "ws")
    st.set_spec(inspect_model(RESNET8))
    return st


@pytest.fixture
def flat_cifar(tmp_path) -> tuple[Path, Path]:
    """CIFAR images in one flat folder (no class in the path) and a file,class CSV elsewhere."""
    folder, rows = tmp_path / "flat", ["file,class"]
    folder.mkdir()
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        for image in sorted(cls.glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(image, folder / f"{cls.name}_{image.name}")
            rows.append(f"{cls.name}_{image.name},{cls.name}")
    labels = tmp_path / "elsewhere" / "labels.csv"
    labels.parent.mkdir()
    labels.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder, labels


def _evaluate(qtbot, panel) -> None:
    for name, box in panel.variant_checks.items():
        box.setChecked(name == "fp32")
    assert panel.evaluate(), panel.messages.text("evaluate")
    qtbot.waitUntil(lambda: panel.job is None, timeout=120000)
    assert not panel.messages.has("job"), panel.messages.text("job")


def test_labels_csv_anywhere_and_why_agreement(qtbot, resnet_state, flat_cifar, make_panel):
    """Old code ignored the CSV (a classifier read labels only inside the image folder) and
    showed "vs fp32" without a word on why."""
    folder, labels = flat_cifar
    panel = make_panel(ResultsPanel, resnet_state)
    assert "CSV" in panel.labels.placeholderText() and "subfolders" in panel.labels.toolTip()
    panel.images.setText(str(folder))
    panel.labels.setText(str(labels))
    _evaluate(qtbot, panel)
    assert panel.report["labelled"] and panel.report["labels"] == str(labels)
    assert "(labelled)" in panel.caption.text()
    assert not panel.messages.has("labels")
    metrics = [panel.metric_box.itemText(i) for i in range(panel.metric_box.count())]
    assert metrics[0] == "top1_agreement" and "top1" in metrics
    assert panel.metric_box.currentText() == "top1"  # labelled, not agreement, by default
    assert panel.plot.getPlotItem().getAxis("left").labelText == "top1"

    panel.labels.setText("")
    _evaluate(qtbot, panel)
    assert "(vs fp32)" in panel.caption.text()
    note = panel.messages.text("labels")
    assert "agreement with fp32" in note and "no class labels found" in note and str(folder) in note
    assert panel.metric_box.currentText() == "top1_agreement"


def test_latency_axis_has_no_si_prefix(qtbot, tmp_path, state, make_panel):
    """ResNet-8's 0.38-0.50 ms read "latency p50 (ms) (x0.001)" with ticks 380-500."""
    import json

    report = {
        "task": "detection",
        "variants": [
            {"name": n, "backend": "ort-cpu", "metrics": {"mAP50_95": m}, "latency_ms": {"p50": p}}
            for n, m, p in (("fp32", 0.25, 0.48), ("int8", 0.23, 0.39))
        ],
    }
    path = tmp_path / "e.json"
    path.write_text(json.dumps(report))
    panel = make_panel(ResultsPanel, state)
    assert panel.load_file(path)
    axis = panel.plot.getPlotItem().getAxis("bottom")
    qtbot.wait(50)  # the range (and with it the prefix) is set as the view lays out
    assert tuple(round(v, 2) for v in axis.range) != (0.0, 1.0)  # the points' range was set
    assert axis.autoSIPrefixScale == 1.0  # ticks are the milliseconds themselves
    assert "x0.001" not in axis.labelString() and "(ms)" in axis.labelString()


def test_dialogs_start_at_the_last_folder_or_the_models(
    qtbot, tmp_path, state, make_panel, monkeypatch
):
    """Dialogs opened in the process's current directory. A recording stand-in replaces the
    modal dialog (it cannot run offscreen); it only records where it was asked to open."""
    from PySide6.QtWidgets import QFileDialog

    asked: list[str] = []

    def record_folder(parent, title, start):
        asked.append(start)
        return str(CIFAR)

    def record_file(parent, title, start, filters=""):
        asked.append(start)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(record_folder))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(record_file))
    panel = make_panel(ResultsPanel, state)
    panel.images.setText("")
    panel._choose()  # nothing used yet: the model's folder
    assert asked[-1] == str(Path(state.spec.path).parent)
    from app.gui.panels.base import panel_of

    assert panel_of(panel.images) is panel  # how the shared images/labels row finds it
    assert panel.pick_folder("Evaluation images", panel.images.text()) == str(CIFAR)
    assert asked[-1] == str(Path(state.spec.path).parent)
    panel._choose()  # then the folder chosen last, in any panel
    assert asked[-1] == str(CIFAR)
    assert panel.start_dir(str(CIFAR / "cat")) == str(CIFAR / "cat")  # the field's own first
