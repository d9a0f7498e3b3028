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
    assert threading.active_count() == baseline, [t.name for t in threading.enumerate()]


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


def test_status_bar_says_where_a_run_fell_back_to_and_a_caveat_apart(qtbot, settings, tmp_path):
    window = MainWindow(settings, workspace_root=str(tmp_path / "ws"))
    qtbot.addWidget(window)
    window.show()
    fell = "asked for TensorrtExecutionProvider but ONNX Runtime is running CUDAExecutionProvider"
    window._runner_info(
        {
            "variant": "int8-trt",
            "backend": "ort-tensorrt",
            "fallback": fell,
            "caveat": "",
            "provider": "CUDAExecutionProvider",
        }
    )
    # it fell back to CUDA, not to the CPU
    assert window.fallback_label.text() == "⚠ fell back to CUDA"
    assert window.fallback_label.toolTip() == fell and window.fallback_label.isVisible()
    caveat = "CUDA graph not used: not every node runs on CUDA"
    window._runner_info(
        {
            "variant": "int8",
            "backend": "ort-cuda",
            "fallback": "",
            "caveat": caveat,
            "provider": "CUDAExecutionProvider",
        }
    )
    assert window.fallback_label.text() == "\u2139 CUDA graph not used"
    assert window.fallback_label.toolTip() == caveat
    assert "note: CUDA graph not used" in window.log_view.toPlainText()
    assert "warning: CUDA graph" not in window.log_view.toPlainText()
    window._runner_info({"variant": "fp32", "backend": "ort-cpu", "fallback": "", "caveat": "",
                         "provider": "CPUExecutionProvider"})  # fmt: skip
    assert not window.fallback_label.isVisible()
    window.close()


def test_the_window_fits_a_small_laptop_screen_with_a_report(qtbot, paths, settings, tmp_path):
    """Each tab scrolls rather than growing the window: before, a results caption and the Model
    tab's boxes made its minimum 1380 x 885, past a 1366 x 768 screen. The table keeps the
    report's order (fp32 first) until a column is clicked."""
    import json

    window = MainWindow(settings, workspace_root=str(tmp_path / "ws"))
    qtbot.addWidget(window)
    window.open_model(str(paths["model"]))
    qtbot.waitUntil(lambda: window.state.spec is not None, timeout=15000)
    rows = [
        {"name": n, "backend": "ort-cpu", "provider": "CPUExecutionProvider", "fallback": "",
         "metrics": {"mAP50_95": 35.9, "agreement_mAP50_95": 100.0},
         "latency_ms": {"p50": p, "p90": p, "p99": p}}
        for n, p in (("fp32", 14.0), ("fp16", 14.5), ("int8", 12.0))
    ]  # fmt: skip
    report = tmp_path / "evaluate-ort-cpu.json"
    data = {"task": "detection", "images": 64, "labelled": True, "variants": rows}
    report.write_text(json.dumps({**data, "images_dir": "/a/long/folder/" * 6}))
    assert window.results_panel.load_file(report)
    window.tabs.setCurrentWidget(window.results_panel)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 740, hint
    table = window.results_panel.table
    assert [table.model().index(r, 0).data() for r in range(3)] == ["fp32", "fp16", "int8"]
    window.close()
