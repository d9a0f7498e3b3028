"""Reusable widgets: the frame view, the live latency chart and the GUI-stall heartbeat."""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPainter, QRegion
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.timing import percentiles

STAGE_COLORS = {
    "preprocess_ms": "#1f77b4",
    "infer_ms": "#d62728",
    "postprocess_ms": "#2ca02c",
    "draw_ms": "#9467bd",
}
SERIES_PENS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


class FrameView(QWidget):
    """Paints the latest QImage scaled to fit, keeping aspect; one image object, no copies."""

    def __init__(self, parent: QWidget | None = None, placeholder: str = "no frame") -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.placeholder = placeholder
        self.setMinimumSize(240, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_image(self, image: QImage | None) -> None:
        old, self.image = self.image, image
        if old is not None and image is not None and old.size() == image.size():
            # same place as the last frame: repaint (and send to the screen) only the image,
            # not the unchanged margins (on a 1050x251 view, 446x251 instead of all of it)
            self.update(self._target().toAlignedRect())
        else:
            self.update()  # repaint is coalesced by Qt: at most one paint per refresh

    def _target(self) -> QRectF:
        """Where the image goes: scaled to fit, centred."""
        iw, ih = self.image.width(), self.image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        background = QColor("#202124")
        if self.image is None or self.image.isNull():
            painter.fillRect(self.rect(), background)
            painter.setPen(QColor("#9aa0a6"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            painter.end()
            return
        target = self._target()
        # only the margins around the image, and only where asked to repaint: filling the whole
        # view first doubled the pixels written per frame
        outside = QRegion(event.rect()) - QRegion(target.toRect())
        for rect in outside:
            painter.fillRect(rect, background)
        if abs(target.width() / self.image.width() - 1.0) > 0.01:
            # frames come at view size; smoothing only when they don't
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(target, self.image)
        painter.end()


class SteadyLabel(QLabel):
    """A label whose text changes often (FPS, p50/p99, agreement) but whose size does not.

    A plain QLabel asks for a new layout on every `setText`; the request climbs to the main
    window, and the tab widget answers a layout request by repainting itself and everything
    in it. In the live view that was ~6 full-panel repaints a second (every control, the tab
    frame, the chart) for a few changing digits. A widget of fixed size does not pass the
    request on (Qt's updateGeometry stops there), so this one is fixed at the size `template`
    needs, and a new text repaints only the label.
    """

    def __init__(self, text: str, template: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._template = template
        self._fix_size()

    def _fix_size(self) -> None:
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(self._template) + 4
        width += margins.left() + margins.right() + 2 * self.margin()
        self.setFixedSize(width, max(super().sizeHint().height(), self.fontMetrics().height()))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fix_size()  # a style sheet or font changes the room the template needs


class LatencyChart(QWidget):
    """Scrolling per-series latency curves with p50/p99 readouts under the plot.

    Cheap to keep on screen: curves are created once and get `setData` at most `hz` times a
    second; the x axis is fixed ("frames ago") and the y range only moves in coarse steps, so
    pyqtgraph's axes (text rendering, the costly part of a redraw) repaint rarely. Five times
    a second, not ten: on the H100 one update (setData + repaint) held the GUI thread, and with
    it Python's GIL, for ~3.1 ms, and at 700-800 frames/s every millisecond the GIL is held is
    taken from the stream's own threads.
    """

    def __init__(
        self,
        series: list[str],
        parent: QWidget | None = None,
        history: int = 300,
        hz: float = 5.0,
        title: str = "latency (ms)",
    ) -> None:
        super().__init__(parent)
        # numpy imports part of itself on the first percentile; done here, before frames flow,
        # that is not a GUI stall at the first update of a run (27 ms on the 2-core CI VM)
        percentiles([1.0, 2.0])
        self.plot = pg.PlotWidget(background="w")
        self.plot.setTitle(title, color="#333", size="9pt")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.enableAutoRange(x=False, y=False)
        self.plot.setXRange(-history + 1, 0, padding=0)
        self.plot.setYRange(0, 10, padding=0)
        self.plot.setLabel("bottom", "frames ago")
        # Top left, one row: curves grow in from the right, so the newest points are never
        # under it, and a short chart (a small window) still has room for it.
        self.legend = self.plot.addLegend(
            offset=(5, 5), labelTextSize="8pt", colCount=max(1, len(series))
        )
        self.plot.setMinimumHeight(140)
        self.history = history
        self.y_top = 10.0
        self.data: dict[str, deque[float]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.readouts: dict[str, QLabel] = {}
        self.count = 0
        row = QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 0)
        for i, name in enumerate(series):
            color = STAGE_COLORS.get(name, SERIES_PENS[i % len(SERIES_PENS)])
            self.data[name] = deque(maxlen=history)
            label = name.removesuffix("_ms")
            self.curves[name] = self.plot.plot([], [], pen=pg.mkPen(color, width=1), name=label)
            readout = SteadyLabel(f"{label}: p50 – p99 –", f"{label}: p50 999.9  p99 999.9 ms")
            readout.setStyleSheet(f"color:{color};")
            self.readouts[name] = readout
            row.addWidget(readout)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addLayout(row)
        self._dirty = False
        self._readout_at = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / hz))
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    def add(self, values: dict[str, float]) -> None:
        """Record one frame's values (cheap; the redraw happens on the timer)."""
        self.count += 1
        for name, buf in self.data.items():
            buf.append(float(values.get(name, float("nan"))))
        self._dirty = True

    def clear(self) -> None:
        self.count = 0
        for buf in self.data.values():
            buf.clear()
        self._dirty = True

    def refresh(self, readouts: bool = False) -> None:
        """Redraw the curves if new values came; the p50/p99 readouts at most twice a second,
        or now with `readouts` (the end of a run: a short run must not end on stale numbers)."""
        if not self._dirty:
            return
        self._dirty = False
        peak = 0.0
        for name, curve in self.curves.items():
            ys = np.fromiter(self.data[name], float, len(self.data[name]))
            xs = np.arange(-len(ys) + 1, 1, dtype=float)
            curve.setData(xs, ys, skipFiniteCheck=True)
            finite = ys[np.isfinite(ys)]
            if finite.size:
                peak = max(peak, float(finite.max()))
        self._fit_y(peak)
        now = time.perf_counter()
        if readouts or now - self._readout_at >= 0.5:  # numbers a person can read
            self._readout_at = now
            for name, readout in self.readouts.items():
                label = name.removesuffix("_ms")
                stats = percentiles(v for v in self.data[name] if v == v)
                if not stats["n"]:  # nothing yet: a dash, not a p50 of 0.0 ms
                    readout.setText(f"{label}: p50 – p99 –")
                    continue
                readout.setText(f"{label}: p50 {stats['p50']:.1f}  p99 {stats['p99']:.1f} ms")

    def _fit_y(self, peak: float) -> None:
        """Grow at once when a curve leaves the plot; shrink only when far below the top."""
        if peak <= 0:
            return
        if peak > self.y_top or peak < self.y_top * 0.4:
            self.y_top = nice_ceiling(peak * 1.2)
            self.plot.setYRange(0, self.y_top, padding=0)

    def rename(self, name: str, text: str) -> None:
        """Change the legend text of one series."""
        label = self.legend.getLabel(self.curves[name])
        if label is not None:
            label.setText(text)

    def curve_points(self, name: str) -> int:
        """Points currently drawn by one curve (for tests and the report)."""
        xs, _ = self.curves[name].getData()
        return 0 if xs is None else len(xs)


def blank_spinboxes(spins, blank: bool) -> None:
    """Show `spins` as a dash (nothing to show yet) rather than as each box's minimum, or
    give them back their numbers."""
    for spin in spins:
        spin.setSpecialValueText("—" if blank else "")
        if blank:
            spin.setValue(spin.minimum())


def nice_ceiling(value: float) -> float:
    """The next of 1, 2, 5 x 10^n at or above `value`."""
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


class Heartbeat(QObject):
    """Measures the GUI thread's longest stall: a 10 ms timer compares expected vs actual gaps."""

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.max_stall_ms = 0.0
        self.stalls: list[float] = []  # every gap over 16 ms (one missed 60 Hz frame)
        self.stall_times: list[float] = []  # when each ended, seconds after start()
        self.beats = 0
        self._t0 = 0.0
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._beat)

    def start(self) -> None:
        self.max_stall_ms = 0.0
        self.stalls = []
        self.stall_times = []
        self.beats = 0
        self._last = self._t0 = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def resume(self) -> None:
        """Start again after `stop` keeping what was measured (the pause is not a stall)."""
        self._last = time.perf_counter()
        self._timer.start()

    def _beat(self) -> None:
        now = time.perf_counter()
        stall = (now - self._last) * 1000.0 - self.interval_ms
        self.max_stall_ms = max(self.max_stall_ms, stall)
        self.beats += 1
        if stall > 16.0:
            self.stalls.append(round(stall, 1))
            self.stall_times.append(round(now - self._t0, 2))
        self._last = now

    def elapsed(self) -> float:
        """Seconds since start() (the clock of `worst_at`)."""
        return round(time.perf_counter() - self._t0, 2)

    def stats(self) -> dict[str, object]:
        """How often the GUI thread stalled, for the scripted report."""
        return {
            "beats": self.beats,
            "over_16ms": len(self.stalls),
            "over_50ms": sum(1 for s in self.stalls if s > 50.0),
            "worst": sorted(self.stalls, reverse=True)[:5],
            # (seconds after start, ms) of the worst five, to place against the round starts
            "worst_at": sorted(zip(self.stall_times, self.stalls), key=lambda p: -p[1])[:5],
        }


class EvalFolderRow(QHBoxLayout):
    """Images folder + labels fields with their pickers: the same row in the Results and
    Precision panels. Labels: YOLO .txt folder or COCO .json for detectors; a file,class CSV
    or a folder of class-named subfolders for classifiers."""

    LABEL_FILES = "Labels (*.json *.csv);;COCO annotations (*.json);;file,class CSV (*.csv)"

    def __init__(
        self, parent: QWidget, images: str, labels: str, images_hint: str, labels_hint: str
    ) -> None:
        super().__init__()
        self._parent = parent
        self.images = QLineEdit(images)
        self.images.setPlaceholderText(images_hint)
        self.images.setToolTip(images_hint)
        self.labels = QLineEdit(labels)
        self.labels.setPlaceholderText(labels_hint)
        self.labels.setToolTip(LABELS_ACCEPTED)
        pick_images = QPushButton("Folder…")
        pick_images.clicked.connect(self.pick_images)
        pick_labels = QPushButton("Labels…")
        pick_labels.setToolTip("Choose a labels folder; cancel it to choose a .json or .csv file")
        pick_labels.clicked.connect(self.pick_labels)
        for w in (QLabel("Images"), self.images, pick_images, QLabel("Labels"), self.labels):
            self.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
        self.addWidget(pick_labels)

    def _panel(self):
        from app.gui.panels.base import panel_of  # the panels import this module

        return panel_of(self._parent)

    def pick_images(self) -> None:
        path = self._panel().pick_folder("Evaluation images", self.images.text())
        if path:
            self.images.setText(path)

    def pick_labels(self) -> None:
        panel = self._panel()
        start = self.labels.text() or self.images.text()
        path = panel.pick_folder("Labels folder (YOLO .txt, or class-named subfolders)", start)
        if not path:
            title = "Labels file (COCO .json or file,class .csv)"
            path = panel.pick_file(title, start, self.LABEL_FILES)
        if path:
            self.labels.setText(path)


LABELS_ACCEPTED = (
    "Detectors: a folder of YOLO .txt files or a COCO .json (default: ../labels beside the "
    "images).\nClassifiers: a CSV of file,class (header optional; file names relative to the "
    "image folder or bare) or a folder of class-named subfolders (default: a CSV or class "
    "subfolders in the image folder).\nEmpty or unmatched: accuracy is agreement with FP32."
)
