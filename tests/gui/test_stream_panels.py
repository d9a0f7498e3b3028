"""Live and compare views on a real video: frames, latency charts, sliders, camera errors."""

from __future__ import annotations

import contextlib

from app.gui.panels.compare import ComparePanel
from app.gui.panels.live import LivePanel


def test_live_plays_video_and_sliders_apply(qtbot, state, paths, make_panel):
    panel = make_panel(LivePanel, state)
    panel.source.setText(str(paths["video"]))
    assert panel.start(max_frames=40)
    qtbot.waitUntil(lambda: panel.control.shown >= 3, timeout=20000)
    assert panel.view.image is not None and panel.view.image.width() > 0
    qtbot.waitUntil(lambda: panel.chart.curve_points("infer_ms") >= 3, timeout=5000)
    assert "p50" in panel.chart.readouts["infer_ms"].text()
    assert panel.state.spec is not None
    panel.conf.setValue(60)
    assert panel.processor.pipelines[0].conf == 0.6
    panel.iou.setValue(30)
    assert panel.processor.pipelines[0].iou == 0.3
    with qtbot.waitSignal(panel.run_finished, timeout=30000) as blocker:
        panel.stop()
    summary = blocker.args[0]
    assert summary["frames_shown"] >= 3
    assert summary["runners"][0]["provider"] == "CPUExecutionProvider"
    assert not panel.running


def test_live_pause_step(qtbot, state, paths, make_panel):
    panel = make_panel(LivePanel, state)
    panel.source.setText(str(paths["video"]))
    panel.start(max_frames=200)
    qtbot.waitUntil(lambda: panel.control.shown >= 1, timeout=20000)
    panel.pause_btn.setChecked(True)
    qtbot.wait(300)
    before = panel.control.processed
    panel.step_btn.click()
    qtbot.waitUntil(lambda: panel.control.processed >= before + 1, timeout=10000)
    qtbot.wait(300)
    # pausing shows the counts as they stand (they refreshed 4 times a second while playing)
    panel.pause_btn.setChecked(False)
    panel.pause_btn.setChecked(True)
    counted = int(panel.fps_label.text().split("frames ")[1].split()[0])
    assert counted >= before + 1, panel.fps_label.text()  # the stepped frame at least
    qtbot.wait(500)  # frames already in the pipeline when it paused land
    processed = panel.control.processed
    # new thresholds redraw the paused frame: shown again, not counted as another frame
    shown = panel.control.shown
    panel.conf.setValue(panel.conf.value() + 10)
    qtbot.waitUntil(lambda: panel.control.shown > shown, timeout=10000)
    assert panel.control.processed == processed
    with qtbot.waitSignal(panel.run_finished, timeout=30000):
        panel.stop()


def test_missing_camera_is_inline_error(qtbot, state, paths, make_panel):
    panel = make_panel(LivePanel, state)
    panel.source.setText("7")
    with qtbot.waitSignal(panel.run_finished, timeout=30000):
        assert panel.start()
    assert "camera 7" in panel.messages.text("run")


def test_missing_variant_is_inline_error(qtbot, state, paths, make_panel):
    panel = make_panel(LivePanel, state)
    panel.source.setText(str(paths["video"]))
    panel.set_variants(["int8-missing"])
    assert not panel.start()
    assert "int8-missing" in panel.messages.text("start")


def test_compare_two_variants_side_by_side(qtbot, state, paths, make_panel):
    panel = make_panel(ComparePanel, state)
    panel.source.setText(str(paths["video"]))
    panel.set_variants(["fp32", "fp32"])
    with qtbot.waitSignal(panel.run_finished, timeout=60000) as blocker:
        assert panel.start(max_frames=6)
    assert blocker.args[0]["frames_shown"] >= 1
    assert all(v.image is not None for v in panel.views_)
    # The same model on the same frames agrees with itself completely.
    assert "agreement so far 100.0% · this frame 100%" in panel.agreement.text()
    assert panel.chart.count >= 1
    panel.chart.refresh()
    assert panel.chart.curve_points("A") >= 1 and panel.chart.curve_points("B") >= 1


def test_compare_fp32_with_real_int8_highlights_disagreements(qtbot, int8_state, paths, make_panel):
    """A small MinMax calibration with only the stem kept float makes an INT8 model that visibly
    disagrees with FP32 on a real video: the score drops below 100% and boxes present on one
    side only are highlighted."""
    panel = make_panel(ComparePanel, int8_state)
    panel.source.setText(str(paths["video"]))
    panel.realtime.setChecked(False)
    panel.set_variants(["fp32", "int8-stem"])
    with qtbot.waitSignal(panel.run_finished, timeout=90000):
        assert panel.start(max_frames=12)
    assert panel.captions[1].text() == "B: int8-stem"
    proc = panel.processor
    assert proc.total > 0 and proc.matched < proc.total
    text = panel.agreement.text()
    score = float(text.split("agreement so far ")[1].split("%")[0])
    assert score < 100.0, text
    assert proc.highlighted > 0, text


def test_compare_a_classifier_with_itself_agrees_fully(qtbot, tmp_path, make_panel):
    """Classifiers agree per frame on the top class; the running score is a share (it read
    200% for a classifier that agreed with itself)."""
    import copy

    from app.core.model.inspection import inspect_model
    from app.gui.state import AppState
    from tests.conftest import IMAGES, MOBILENET

    st = AppState(workspace_root=tmp_path / "ws")
    st.set_spec(copy.deepcopy(inspect_model(MOBILENET)))
    panel = make_panel(ComparePanel, st)
    panel.source.setText(str(IMAGES / "imagenet-samples"))
    panel.set_variants(["fp32", "fp32"])
    with qtbot.waitSignal(panel.run_finished, timeout=60000):
        assert panel.start(max_frames=5)
    assert panel.processor.total == 10 and panel.processor.matched == 5
    assert "agreement so far 100.0% · this frame 100%" in panel.agreement.text()
    # a run shorter than the readouts' half-second still ends on its real numbers
    for side in "AB":
        text = panel.chart.readouts[side].text()
        assert float(text.split("p50 ")[1].split()[0]) > 0, text


def test_every_frame_reaches_the_chart_and_counts_add_up(qtbot, state, paths, make_panel):
    """Frames are processed as fast as possible; only those the screen can show are drawn, but
    every processed frame's timings reach the chart and the counts add up."""
    panel = make_panel(LivePanel, state)
    panel.source.setText(str(paths["video"]))
    panel.realtime.setChecked(False)
    with qtbot.waitSignal(panel.run_finished, timeout=60000) as blocker:
        assert panel.start(max_frames=30)
    summary = blocker.args[0]
    assert summary["frames_processed"] == 30 and summary["frames_dropped"] == 0
    assert summary["frames_shown"] + summary["frames_not_shown"] == 30
    assert panel.chart.count == 30
    assert summary["fps"] > 0


def test_a_stream_runs_on_its_job_and_two_stage_threads_not_on_qts_pool(
    qtbot, state, paths, pool, make_panel
):
    """One thread mechanism per stream: the job (inference) on the worker pool, reading and
    finishing on the core's two Python threads at the stages' lower priority. The reader used
    to be a second runnable on Qt's global pool, beside the calibration jobs."""
    import os
    import sys
    import threading

    from PySide6.QtCore import QThreadPool

    from app.gui.stream import STAGE_NICE

    panel = make_panel(LivePanel, state)
    panel.source.setText(str(paths["video"]))
    qtbot.waitUntil(lambda: not pool.jobs, timeout=20000)  # the backend probe is done
    assert panel.start(max_frames=300)
    qtbot.waitUntil(lambda: panel.control.shown >= 2, timeout=20000)
    stage = {t.name: t for t in threading.enumerate() if t.name.startswith("frames-")}
    assert set(stage) == {"frames-read", "frames-finish"}
    assert QThreadPool.globalInstance().activeThreadCount() == 1  # the stream job only
    if sys.platform.startswith("linux"):
        nice = {n: os.getpriority(os.PRIO_PROCESS, t.native_id) for n, t in stage.items()}
        assert set(nice.values()) <= {0, STAGE_NICE}, nice  # 0: lowering is not permitted here
    with qtbot.waitSignal(panel.run_finished, timeout=30000):
        panel.stop()
    for t in stage.values():
        t.join(5)
    assert not any(t.is_alive() for t in stage.values())


def test_images_are_made_only_for_the_screen(qapp):
    """StreamControl: no new image while one waits for the GUI or faster than the screen
    refreshes; frames not drawn still count as processed and hand their timings to the next
    take; a paused (stepped) stream draws every frame."""
    import time

    import numpy as np

    from app.gui.stream import Packet, StreamControl, to_qimage

    ctl = StreamControl(display_hz=10.0)  # ten images a second, two may be banked
    image = to_qimage(np.full((4, 6, 3), (255, 0, 0), np.uint8))
    assert image.pixelColor(0, 0).blue() == 255 and image.pixelColor(0, 0).red() == 0
    assert ctl.wants_image()
    ctl.deliver(Packet(0, "v", [image], [{"infer_ms": 1.0}]))
    assert not ctl.wants_image()  # the GUI has not taken it yet
    ctl.deliver(Packet(1, "v", [], [{"infer_ms": 2.0}]))  # not drawn
    packet = ctl.take_packet()
    assert packet.index == 0 and [t[0]["infer_ms"] for t in packet.backlog] == [1.0, 2.0]
    assert ctl.wants_image()  # the second banked refresh
    ctl.deliver(Packet(2, "v", [image], [{"infer_ms": 3.0}]))
    ctl.take_packet()
    assert not ctl.wants_image()  # faster than ten a second
    ctl.deliver(Packet(3, "v", [], [{"infer_ms": 4.0}]))
    assert ctl.take_packet() is None and ctl.take_timings() == [[{"infer_ms": 4.0}]]
    time.sleep(0.11)
    assert ctl.wants_image()
    assert (ctl.processed, ctl.shown, ctl.display_dropped, ctl.dropped) == (4, 2, 2, 0)
    ctl.paused = True  # stepping through a paused video draws every frame
    assert all(ctl.wants_image() for _ in range(5))


def test_the_last_frame_is_shown_even_if_it_was_not_drawn(qapp):
    """A run that ends on a frame not drawn (the screen had just had one) draws it at the end,
    without counting it as another processed frame."""
    import numpy as np

    from app.gui.stream import Packet, StreamControl, to_qimage

    ctl = StreamControl(display_hz=1.0)
    image = to_qimage(np.zeros((4, 6, 3), np.uint8))
    ctl.deliver(Packet(0, "a.jpg", [image], [{"infer_ms": 1.0}]))
    ctl.take_packet()
    last = Packet(1, "b.jpg", [], [{"infer_ms": 2.0}])
    last.draw = lambda: [to_qimage(np.full((4, 6, 3), 255, np.uint8))]
    ctl.deliver(last)
    assert ctl.take_packet() is None
    ctl.show_last()
    shown = ctl.take_packet()
    assert shown.source == "b.jpg" and shown.images[0].pixelColor(0, 0).red() == 255
    assert [t[0]["infer_ms"] for t in shown.backlog] == [2.0]
    assert (ctl.processed, ctl.shown, ctl.display_dropped) == (2, 2, 0)


def test_a_view_slower_than_the_screen_draws_every_frame(qtbot, state, paths, make_panel):
    """Compare runs both variants in one step (~50 ms here): far slower than a 60 Hz screen, so
    (almost) every frame is drawn. Deciding before the step drew only every other frame."""
    panel = make_panel(ComparePanel, state)
    panel.source.setText(str(paths["video"]))
    panel.set_variants(["fp32", "fp32"])
    panel.realtime.setChecked(False)
    with qtbot.waitSignal(panel.run_finished, timeout=60000) as blocker:
        assert panel.start(max_frames=12)
    summary = blocker.args[0]
    assert summary["frames_processed"] == 12
    assert summary["frames_shown"] >= 10, summary


class _PaintCounter:
    """Counts paint events covering all of a widget (a full repaint), via an event filter."""

    def __init__(self, widget):
        from PySide6.QtCore import QEvent, QObject

        counter = self

        class Filter(QObject):
            def eventFilter(self, obj, event):
                if event.type() == QEvent.Type.Paint and event.rect() == obj.rect():
                    counter.full += 1
                return False

        self.full = 0
        self._filter = Filter()
        widget.installEventFilter(self._filter)


@contextlib.contextmanager
def _in_tabs(qtbot, panel):
    """The panel as the main window holds it: a page of a tab widget."""
    from PySide6.QtWidgets import QTabWidget

    tabs = QTabWidget()
    tabs.addTab(panel, "Live")
    tabs.resize(1100, 760)
    tabs.show()
    qtbot.waitExposed(tabs)
    try:
        yield tabs
    finally:  # hand the panel back before the tab widget goes, for its own teardown
        tabs.removeTab(0)
        panel.setParent(None)
        tabs.close()


def test_changing_readouts_do_not_repaint_the_whole_panel(qtbot, state, paths, make_panel):
    """The FPS and p50/p99 labels change several times a second; a label that asks for a new
    layout each time made the tab widget repaint itself and every control (~6 a second)."""
    panel = make_panel(LivePanel, state)
    with _in_tabs(qtbot, panel) as tabs:
        _play_and_count_full_repaints(qtbot, panel, tabs, paths)


def _play_and_count_full_repaints(qtbot, panel, tabs, paths):
    from PySide6.QtWidgets import QLabel

    qtbot.wait(200)  # the first paints of the new window
    counter = _PaintCounter(tabs)
    # control: a plain label whose text grows in the same row does trigger full repaints, so
    # the count below can fail
    plain = QLabel("x")
    panel.fps_label.parentWidget().layout().addWidget(plain)
    qtbot.wait(100)
    counter.full = 0
    for i in range(3):
        plain.setText("frames " + "9" * (i + 3))
        qtbot.wait(50)
    assert counter.full >= 2
    plain.hide()
    qtbot.wait(100)

    panel.source.setText(str(paths["video"]))
    counter.full = 0
    assert panel.start(max_frames=60)
    with qtbot.waitSignal(panel.run_finished, timeout=60000):
        pass
    assert panel.control.shown >= 10
    assert panel.fps_label.text().startswith("FPS ")
    assert counter.full <= 1, f"{counter.full} full repaints of the tab widget while playing"
