"""Main window: assembled panels, status bar, settings restore, and no leaked threads on close."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThreadPool

from app.gui.main_window import MainWindow


def test_close_with_running_worker_leaks_no_threads(qtbot, paths, settings, tmp_path):
    baseline = threading.active_count()
    window = MainWindow(settings, workspace_root=str(tmp_path / "ws"))
    qtbot.addWidget(window)
    window.show()
    window.open_model(str(paths["model"]))
    qtbot.waitUntil(lambda: window.state.spec is not None, timeout=15000)
    live = window.live_panel
    live.source.setText(str(paths["video"]))
    assert live.start()  # no frame limit: still running when the window closes
    qtbot.waitUntil(lambda: live.control.shown >= 1, timeout=20000)
    assert "CPUExecutionProvider" in window.backend_label.text()
    assert "ort-cpu" in window.backend_label.text()
    assert not window.fallback_label.isVisible()
    window.close()
    assert not window.pool.running()
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert threading.active_count() == baseline


def test_settings_restore_tab_and_recent(qtbot, paths, settings, tmp_path):
    window = MainWindow(settings, workspace_root=str(tmp_path / "ws"))
    qtbot.addWidget(window)
    window.open_model(str(paths["model"]))
    qtbot.waitUntil(lambda: window.state.spec is not None, timeout=15000)
    window.tabs.setCurrentIndex(5)
    window.close()
    again = MainWindow(settings, workspace_root=str(tmp_path / "ws"))
    qtbot.addWidget(again)
    assert again.tabs.currentIndex() == 5
    assert settings.recent("models")[0].endswith("yolox-nano-coco")
    assert again.recent_menu.isEnabled()
    again.close()
