"""First-run defaults of the Live and Compare views (issue 18): Compare's B follows the best
variant built, one source serves both views, and classifiers get no box-threshold sliders."""

from __future__ import annotations

import copy
import shutil

from app.gui.panels.compare import ComparePanel
from app.gui.panels.live import LivePanel


def box_texts(panel) -> list[str]:
    return [b.currentText() for b in panel.variant_boxes]


def test_compare_b_follows_the_best_built_variant_until_the_user_picks(
    qtbot, tmp_path, yolox_spec, int8_workspace, make_panel
):
    """The panel exists before anything is built (as in the app); B then follows int8 over
    fp16 over fp32. It used to stay on fp32, comparing the model with itself."""
    from app.core.quant.quantize import quantize
    from app.gui.state import AppState

    state = AppState(workspace_root=tmp_path / "ws")
    state.set_spec(copy.deepcopy(yolox_spec))
    panel = make_panel(ComparePanel, state)
    assert box_texts(panel) == ["fp32", "fp32"]  # nothing else built yet

    quantize(state.workspace(), precisions=("fp16",))
    state.variants_changed.emit()
    assert box_texts(panel) == ["fp32", "fp16"]

    built = int8_workspace / "variants"  # a real int8 of the same model, as quantize left it
    for name in ("int8.onnx", "int8.json"):
        shutil.copy(built / name, state.workspace().root / "variants" / name)
    state.variants_changed.emit()
    assert box_texts(panel) == ["fp32", "int8"]

    b = panel.variant_boxes[1]
    b.setCurrentIndex(b.findText("fp16"))
    b.activated.emit(b.currentIndex())  # what a click on the list sends
    state.variants_changed.emit()
    assert box_texts(panel) == ["fp32", "fp16"]  # the user's choice is kept


def test_live_and_compare_share_one_source(qtbot, state, paths, make_panel, settings):
    live = make_panel(LivePanel, state)
    compare = make_panel(ComparePanel, state)
    live.source.setText(str(paths["video"]))
    assert compare.source.text() == str(paths["video"])
    compare.source.setText(str(paths["images"]))
    assert live.source.text() == str(paths["images"])
    # and across sessions: the source a view played is where both start next time
    live.source.setText(str(paths["video"]))
    with qtbot.waitSignal(live.run_finished, timeout=60000):
        assert live.start(max_frames=2)
    from app.gui.state import AppState

    later = AppState(workspace_root=state.workspace_root)
    later.set_spec(state.spec)
    assert make_panel(ComparePanel, later).source.text() == str(paths["video"])


def test_classifiers_get_no_confidence_or_nms_slider(qtbot, tmp_path, yolox_spec, make_panel):
    from app.core.model.inspection import inspect_model
    from app.gui.state import AppState
    from tests.assets import MOBILENET

    state = AppState(workspace_root=tmp_path / "ws")
    state.set_spec(copy.deepcopy(inspect_model(MOBILENET)))
    panels = [make_panel(LivePanel, state), make_panel(ComparePanel, state)]
    for panel in panels:
        assert panel.threshold_widgets
        assert not any(w.isVisible() for w in panel.threshold_widgets)
        assert panel.fps_label.isVisible()  # the row itself stays
    state.set_spec(copy.deepcopy(yolox_spec))  # a detector: the sliders are back
    for panel in panels:
        assert all(w.isVisible() for w in panel.threshold_widgets)


def test_live_source_dialogs_start_at_the_models_folder_not_the_cwd(
    qtbot, state, make_panel, monkeypatch
):
    """A recording stand-in replaces the modal dialog (it cannot run offscreen): it only records
    where the Live view's File... and Folder... dialogs open."""
    from pathlib import Path

    from PySide6.QtWidgets import QFileDialog

    asked: list[str] = []
    monkeypatch.setattr(
        QFileDialog,
        "getExistingDirectory",
        staticmethod(lambda parent, title, start: asked.append(start) or ""),
    )
    monkeypatch.setattr(
        QFileDialog,
        "getOpenFileName",
        staticmethod(lambda parent, title, start, filters="": asked.append(start) or ("", "")),
    )
    panel = make_panel(LivePanel, state)
    panel.source.setText("")
    panel._pick_folder()
    panel._pick_file()
    assert asked == [str(Path(state.spec.path).parent)] * 2  # was "" (the process's cwd)
