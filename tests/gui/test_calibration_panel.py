"""Calibration panel on a small real folder: one run to the end, one cancelled."""

from __future__ import annotations

from app.gui.panels.calibration import CalibrationPanel


def test_calibrate_then_cancel(qtbot, state, paths, make_panel):
    panel = make_panel(CalibrationPanel, state)
    panel.folder.setText(str(paths["images"]))
    panel.count.setValue(3)
    panel.method.setCurrentText("minmax")
    assert panel.start()
    qtbot.waitUntil(lambda: panel.job is None, timeout=120000)  # finished and cleaned up
    assert panel.result is not None and len(panel.result.images_used) == 3
    assert "Calibrated" in panel.status.text()
    qtbot.waitUntil(lambda: panel.thumbs.count() == 3, timeout=10000)

    panel.count.setValue(40)
    panel.seed.setValue(1)
    assert panel.start()
    job = panel.job
    with qtbot.waitSignal(job.signals.done, timeout=120000):
        panel.cancel()
    assert "Cancelled" in panel.status.text()
    assert panel.job is None and panel.run_btn.isEnabled()


def test_empty_folder_is_inline_error(qtbot, state, tmp_path, make_panel):
    panel = make_panel(CalibrationPanel, state)
    panel.folder.setText(str(tmp_path))
    assert not panel.start()
    assert "no images" in panel.messages.text("folder")


def test_first_values_are_the_declared_defaults(qtbot, state, make_panel):
    """A fresh panel starts where `int8-studio calibrate` and calibrate() do (it said MinMax)."""
    import inspect

    from app.core import defaults
    from app.core.quant.calibration import calibrate

    panel = make_panel(CalibrationPanel, state)
    assert defaults.CALIBRATION_METHOD == "percentile"
    assert panel.method.currentText() == defaults.CALIBRATION_METHOD
    assert inspect.signature(calibrate).parameters["method"].default == panel.method.currentText()
    assert panel.seed.value() == defaults.CALIBRATION_SEED
    assert panel.count.value() == defaults.CALIBRATION_COUNT and panel.count.text() == "all"


def test_preview_skips_a_tiny_image_and_says_so(qtbot, state, tmp_path, paths, make_panel):
    """A 3x2 PNG made the reduced decode raise cv2.error and the whole preview stayed blank."""
    import shutil

    import cv2
    import numpy as np

    for image in sorted((paths["images"] / "images").glob("*.jpg"))[:3]:
        shutil.copy(image, tmp_path / image.name)
    assert cv2.imwrite(str(tmp_path / "tiny.png"), np.full((2, 3, 3), 200, np.uint8))
    panel = make_panel(CalibrationPanel, state)
    panel.folder.setText(str(tmp_path))
    panel.preview()
    qtbot.waitUntil(lambda: panel.messages.has("thumbs"), timeout=20000)
    assert panel.thumbs.count() == 3
    shown = {panel.thumbs.item(i).toolTip() for i in range(panel.thumbs.count())}
    assert str(tmp_path / "tiny.png") not in shown
    assert "1 of 4 thumbnails not shown" in panel.messages.text("thumbs")
    assert "tiny.png" in panel.messages.text("thumbs")


def test_preview_says_how_many_of_the_sample_it_shows(qtbot, state, make_panel):
    """64 chosen, 48 thumbnails, and nothing said about the other 16."""
    from app.gui.panels.calibration import MAX_THUMBS
    from tests.assets import IMAGES

    panel = make_panel(CalibrationPanel, state)
    panel.folder.setText(str(IMAGES / "coco-train128" / "images"))
    panel.count.setValue(64)
    panel.preview()
    qtbot.waitUntil(lambda: "showing" in panel.thumbs_caption.text(), timeout=30000)
    assert panel.thumbs.count() == MAX_THUMBS == 48
    assert panel.thumbs_caption.text().startswith("showing 48 of 64 images")
    panel.count.setValue(5)
    panel.preview()
    qtbot.waitUntil(lambda: panel.thumbs.count() == 5, timeout=30000)
    assert panel.thumbs_caption.text() == "showing all 5 images of the sample"
