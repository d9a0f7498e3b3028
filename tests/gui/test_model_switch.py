"""Opening another model clears everything that belonged to the previous one (real YOLOX-Nano
calibrated and played, then the real ResNet-8, in the real main window)."""

from __future__ import annotations

from app.gui.main_window import MainWindow
from tests.assets import RESNET8


def test_switching_models_clears_every_panel(qtbot, paths, settings):
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    window.open_model(str(paths["model"]))
    qtbot.waitUntil(lambda: window.state.spec is not None, timeout=20000)
    assert "yolox_nano.onnx" in window.windowTitle()
    calib = window.calibration_panel
    calib.folder.setText(str(paths["images"]))
    calib.count.setValue(3)
    calib.method.setCurrentText("minmax")
    assert calib.start()
    qtbot.waitUntil(lambda: calib.job is None, timeout=120000)
    assert calib.result is not None and calib.thumbs.count() == 3
    live = window.live_panel
    live.source.setText(str(paths["video"]))
    assert live.start(max_frames=3)
    qtbot.waitUntil(lambda: live.job is None and live.view.image is not None, timeout=60000)
    assert "ort-cpu" in window.backend_label.text()
    window.precision_panel.analysis = {"target": "ort-cpu"}  # as a finished analysis leaves it
    for panel in window.panels:  # a banner left on every tab
        panel.messages.set("old", "about yolox_nano", "warning")

    window.open_model(str(RESNET8))
    qtbot.waitUntil(lambda: window.state.spec.task == "classification", timeout=20000)
    assert "resnet8_cifar10.onnx" in window.windowTitle()
    assert "yolox" not in window.windowTitle()
    assert calib.result is None and calib.thumbs.count() == 0
    assert calib.skipped.topLevelItemCount() == 0
    assert calib.status.text() == "Not calibrated yet."
    for view in [*live.views(), *window.compare_panel.views()]:
        assert view.image is None
    assert window.backend_label.text() == "no runner"
    assert window.precision_panel.analysis is None
    assert window.results_panel.report == {}
    for panel in window.panels:
        assert not panel.messages.has("old"), panel.title
    assert window.model_panel.labels.item(0).text() == "0: airplane"

    # back to YOLOX: its own calibration is still in its workspace, and says so
    window.open_model(str(paths["model"]))
    qtbot.waitUntil(lambda: window.state.spec.task == "detection", timeout=20000)
    assert "Calibrated earlier" in calib.status.text()
    window.close()
