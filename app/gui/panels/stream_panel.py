"""Shared controls and playback logic of the live and compare panels."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from app.core.errors import UserError
from app.core.model.spec import ModelSpec
from app.gui.panels.base import BackendStatuses, Panel, fill_backend_combo
from app.gui.processors import LiveProcessor
from app.gui.stream import Packet, StreamControl, run_stream
from app.gui.widgets import LatencyChart, SteadyLabel
from app.gui.workers import Job

SOURCE_KEY = "stream/source"  # the source Live and Compare share, across sessions


class StreamPanel(Panel):
    """Source, backend, play controls and threshold sliders; subclasses add views and variants."""

    run_finished = Signal(dict)  # summary of a run that ended (or was stopped)
    processor_class = LiveProcessor
    n_variants = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job: Job | None = None
        self.control: StreamControl | None = None
        self.processor: LiveProcessor | None = None
        self.run_info: list[dict[str, Any]] = []
        self.job_summary: dict[str, Any] = {}
        # (time shown, frames processed by then) of the latest shown frames: the FPS readout
        self._shown_times: deque[tuple[float, int]] = deque(maxlen=60)
        self._t_start = 0.0
        self._first_shown = self._last_shown = 0.0
        self._label_at = 0.0
        self.fps = 0.0
        self._build_controls()
        self.statuses = BackendStatuses(self.pool)
        self.statuses.ready.connect(lambda s: fill_backend_combo(self.backend, s))
        self.statuses.load()
        self.state.variants_changed.connect(self.refresh_variants)
        if self.state.spec is not None:
            self.on_spec_changed(self.state.spec)
        self._update_buttons()

    # layout ----------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        row1 = QHBoxLayout()
        # Live and Compare share one source (the app state): a source chosen in one view is
        # the other's too, and the last one played is remembered for both.
        if not self.state.source:
            stored = self.settings.get(SOURCE_KEY) or self.setting("source", "")
            self.state.set_source(str(stored or ""))
        self.source = QLineEdit(self.state.source)
        self.source.setPlaceholderText("video, image, folder, or camera index (0, 1, ...)")
        self.source.textChanged.connect(self.state.set_source)
        self.state.source_changed.connect(self._source_changed)
        pick_file = QPushButton("File…")
        pick_file.clicked.connect(self._pick_file)
        pick_dir = QPushButton("Folder…")
        pick_dir.clicked.connect(self._pick_folder)
        self.camera = QSpinBox()
        self.camera.setRange(0, 63)
        self.camera.setPrefix("camera ")
        use_cam = QPushButton("Use camera")
        use_cam.clicked.connect(lambda: self.source.setText(str(self.camera.value())))
        row1.addWidget(QLabel("Source"))
        row1.addWidget(self.source, 1)
        for w in (pick_file, pick_dir, self.camera, use_cam):
            row1.addWidget(w)
        self.body.addLayout(row1)

        row2 = QHBoxLayout()
        self.variant_boxes: list[QComboBox] = []
        self._chosen: set[int] = set()  # variant boxes the user picked by hand: kept as is
        for i in range(self.n_variants):
            box = QComboBox()
            box.setMinimumWidth(90)
            box.activated.connect(lambda _index, i=i: self._chosen.add(i))
            row2.addWidget(QLabel("Variant" if self.n_variants == 1 else f"{'AB'[i]}"))
            row2.addWidget(box)
            self.variant_boxes.append(box)
        self.backend = QComboBox()
        self.backend.addItem("ort-cpu", "ort-cpu")
        # "openvino-cpu (unavailable)" must not be cut to "openvin"
        self.backend.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        row2.addWidget(QLabel("Backend"))
        row2.addWidget(self.backend)
        self.realtime = QCheckBox("Real time")
        self.realtime.setToolTip("Play videos at their own speed and drop frames the model misses")
        self.realtime.setChecked(bool(self.setting("realtime", True)))
        row2.addWidget(self.realtime)
        row2.addStretch(1)
        self.start_btn = QPushButton("Start")
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.setCheckable(True)
        self.step_btn = QPushButton("Step")
        self.stop_btn = QPushButton("Stop")
        self.start_btn.clicked.connect(lambda: self.start())
        self.pause_btn.toggled.connect(self._pause)
        self.step_btn.clicked.connect(self._step)
        self.stop_btn.clicked.connect(self.stop)
        for w in (self.start_btn, self.pause_btn, self.step_btn, self.stop_btn):
            row2.addWidget(w)
        self.body.addLayout(row2)

        row3 = QHBoxLayout()
        self.threshold_widgets: list[QWidget] = []  # hidden for classifiers: nothing to filter
        self.conf = self._slider(row3, "Confidence", 0.30)
        self.iou = self._slider(row3, "NMS IoU", 0.45)
        self.conf.valueChanged.connect(self._thresholds_changed)
        self.iou.valueChanged.connect(self._thresholds_changed)
        self.fps_label = SteadyLabel(
            "FPS –", "FPS 9999.9 · frames 999999 · shown 999999 · dropped 999999"
        )
        self.fps_label.setToolTip(
            "FPS: frames processed per second (inference, boxes, timings for every frame).\n"
            "shown: frames drawn on screen, at most one per screen refresh.\n"
            "dropped: frames skipped unprocessed because the model was slower than the source."
        )
        row3.addWidget(self.fps_label)
        row3.addStretch(0)  # takes the room of the sliders when a classifier hides them
        self.body.addLayout(row3)

    def _slider(self, row: QHBoxLayout, name: str, value: float) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(1, 99)
        slider.setValue(int(round(value * 100)))
        slider.setMinimumWidth(120)
        label = QLabel(f"{name} {value:.2f}")
        label.setMinimumWidth(110)
        slider.valueChanged.connect(lambda v, lab=label, n=name: lab.setText(f"{n} {v / 100:.2f}"))
        row.addWidget(label)
        row.addWidget(slider, 1)
        self.threshold_widgets += [label, slider]
        return slider

    def _source_changed(self, source: str) -> None:
        if self.source.text() != source:
            self.source.setText(source)

    def _pick_file(self) -> None:
        path = self.pick_file(
            "Video or image",
            self.source.text(),
            "Media (*.mp4 *.avi *.mkv *.mov *.jpg *.jpeg *.png *.bmp)",
        )
        if path:
            self.source.setText(path)

    def _pick_folder(self) -> None:
        path = self.pick_folder("Image folder", self.source.text())
        if path:
            self.source.setText(path)

    # model -----------------------------------------------------------------------------------
    def on_spec_changed(self, spec: object) -> None:
        self.stop()
        self._chosen.clear()  # a choice made for another model's variants does not carry over
        self.refresh_variants()
        if isinstance(spec, ModelSpec):
            self.conf.setValue(int(round(spec.postprocess.conf * 100)))
            self.iou.setValue(int(round(spec.postprocess.iou * 100)))
        # score and NMS thresholds filter boxes: a classifier has none
        detector = not isinstance(spec, ModelSpec) or spec.task == "detection"
        for w in self.threshold_widgets:
            w.setVisible(detector)
        self._update_buttons()

    def default_variant(self, index: int, names: list[str]) -> str:
        """The variant box `index` shows until the user picks one: fp32 (the model itself)."""
        return "fp32"

    def refresh_variants(self) -> None:
        names = self.state.variant_names()
        for i, box in enumerate(self.variant_boxes):
            keep = box.currentText()
            box.clear()
            box.addItems(names)
            if keep in names and i in self._chosen:
                box.setCurrentText(keep)
            elif names:
                # not chosen by hand: follow the default as variants are built or removed
                box.setCurrentText(self.default_variant(i, names))

    def set_variants(self, names: list[str]) -> None:
        """Choose variants by name (adds names the workspace lacks, so start() reports them)."""
        for i, (box, name) in enumerate(zip(self.variant_boxes, names)):
            if box.findText(name) < 0:
                box.addItem(name)
            box.setCurrentText(name)
            self._chosen.add(i)

    # running ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self, max_frames: int | None = None) -> bool:
        """Start playing the source; False (with an inline message) when it cannot start."""
        if self.running:
            return False
        self.messages.clear()
        try:
            spec = self.state.require_spec()
            names = [b.currentText() or "fp32" for b in self.variant_boxes]
            backend = self.backend.currentData() or self.backend.currentText()
            paths = [self.state.variant_path(n, backend) for n in names]  # engines on tensorrt
            source = self.source.text().strip()
            if not source:
                raise UserError("choose a source: a video, an image, a folder or a camera index")
        except UserError as exc:
            self.messages.set("start", str(exc))
            return False
        self.settings.set(SOURCE_KEY, source)
        self.set_setting("realtime", self.realtime.isChecked())
        screen = self.screen()
        hz = screen.refreshRate() if screen is not None else 0.0
        # images are made at most at the screen's refresh rate; every frame is still processed
        self.control = StreamControl(
            realtime=self.realtime.isChecked(), display_hz=hz if hz >= 20 else 60.0
        )
        self.control.frame_ready.connect(self._on_frame)
        self.control.opened.connect(self._on_opened)
        self._update_max_size()
        self.processor = self.processor_class(spec, paths, backend, names)
        self.processor.set_thresholds(self.conf.value() / 100, self.iou.value() / 100)
        self._shown_times.clear()
        self.job_summary = {}
        self._first_shown = self._last_shown = 0.0
        self.reset_views()
        self._t_start = time.perf_counter()
        self.job = self.pool.start(
            run_stream,
            self.processor,
            source,
            self.control,
            max_frames,
            name=self.title.lower(),
            on_finished=self._on_finished,
            on_error=self._on_error,
            on_done=self._on_done,
        )
        self._update_buttons()
        return True

    def stop(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _pause(self, paused: bool) -> None:
        if self.control is not None:
            self.control.paused = paused
            if paused:  # the counts and readouts as they stand, not as of the last refresh
                self._show_final_numbers()

    def _step(self) -> None:
        if self.control is not None:
            if not self.control.paused:
                self.pause_btn.setChecked(True)
            self.control.step()

    def _thresholds_changed(self) -> None:
        if self.processor is not None:
            self.processor.set_thresholds(self.conf.value() / 100, self.iou.value() / 100)
        if self.control is not None and self.control.paused:
            self.control.refresh = True  # show the paused frame with the new thresholds

    def _on_opened(self, infos: list[dict[str, Any]]) -> None:
        self.run_info = infos
        for info in infos:
            self.state.runner_info.emit(info)
            who = f"{info['variant']}: " if info.get("variant") else ""
            if info.get("fallback"):
                self.messages.set(f"fallback:{who}", who + info["fallback"], "warning")
            if info.get("caveat"):
                self.messages.set(f"caveat:{who}", who + info["caveat"], "info")

    def _on_frame(self) -> None:
        if self.control is None:
            return
        packet = self.control.take_packet()
        if packet is None:
            return
        now = time.perf_counter()
        self._first_shown = self._first_shown or now
        self._last_shown = now
        self._shown_times.append((now, self.control.processed))
        if len(self._shown_times) > 1:
            (t0, n0), (t1, n1) = self._shown_times[0], self._shown_times[-1]
            self.fps = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        self.show_packet(packet)
        if now - self._label_at >= 0.25:  # readable, and no relayout on every frame
            self._label_at = now
            self._show_counts()

    def _show_counts(self) -> None:
        if self.control is not None:
            ctl = self.control
            self.fps_label.setText(
                f"FPS {self.fps:.1f} · frames {ctl.processed} · shown {ctl.shown} · "
                f"dropped {ctl.dropped}"
            )

    def _on_finished(self, summary: dict[str, Any]) -> None:
        self.job_summary = summary
        for source, reason in summary.get("skipped", []):
            self.messages.set(f"skip:{source}", f"skipped {source}: {reason}", "warning")
        self.state.message.emit(
            f"{self.title}: {summary['processed']} frames, {summary['dropped']} dropped"
        )

    def _on_error(self, message: str, _tb: str) -> None:
        self.messages.set("run", message, "error")

    def _on_done(self) -> None:
        self.job = None
        self._show_final_numbers()
        summary = self.summary()
        self.pause_btn.setChecked(False)
        self._update_buttons()
        self.run_finished.emit(summary)

    def _show_final_numbers(self) -> None:
        """The last packet, and charts and counts as they stand (undrawn frames included)."""
        self._on_frame()
        if self.control is not None:
            self.add_timings(self.control.take_timings())
        for chart in self.charts():
            chart.refresh(readouts=True)
        self._show_counts()

    def summary(self) -> dict[str, Any]:
        """Counts of the current or last run (for the status line and the scripted report)."""
        ctl = self.control
        shown = ctl.shown if ctl else 0
        span = self._last_shown - self._first_shown  # first shown to last: not start-up
        return {
            "frames_processed": ctl.processed if ctl else 0,
            "frames_shown": shown,
            "frames_dropped": ctl.dropped if ctl else 0,
            "frames_not_shown": ctl.display_dropped if ctl else 0,
            # the view's throughput: every frame processed, first to last
            "fps": round(ctl.processed_fps, 2) if ctl else 0.0,
            "shown_fps": round((shown - 1) / span, 2) if shown > 1 and span > 0 else 0.0,
            "runners": self.run_info,
            "stream": self.job_summary,
        }

    def _update_buttons(self) -> None:
        running = self.running
        self.start_btn.setEnabled(not running and self.state.spec is not None)
        for w in (self.pause_btn, self.step_btn, self.stop_btn):
            w.setEnabled(running)

    def _update_max_size(self) -> None:
        if self.control is not None:
            w, h = self.view_size()
            ratio = self.devicePixelRatioF()
            self.control.max_size = (int(w * ratio), int(h * ratio))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update_max_size()

    # for subclasses ------------------------------------------------------------------------
    def view_size(self) -> tuple[int, int]:
        raise NotImplementedError

    def reset_views(self) -> None:
        raise NotImplementedError

    def show_packet(self, packet: Packet) -> None:
        raise NotImplementedError

    def add_timings(self, frames: list[list[dict[str, float]]]) -> None:
        """Per-variant stage timings of frames, oldest first, for the charts."""
        raise NotImplementedError

    def views(self) -> list[QWidget]:
        return []

    def charts(self) -> list[LatencyChart]:
        return []
