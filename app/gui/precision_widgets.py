"""The Precision panel's two plots: the per-block SQNR bar chart and the activation histogram
with its clip range, plus the small formatting helpers both use."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTableWidget, QVBoxLayout, QWidget

OP_COLORS = {"Conv": "#4c78a8", "ConvTranspose": "#b279a2", "Gemm": "#f58518", "MatMul": "#54a24b"}
OTHER_COLOR = "#9d9d9d"
SQNR_CAP = 90.0  # dB; "no measurable noise" is reported as 120 and would flatten every other bar


def short_block(name: str, width: int = 34) -> str:
    """A readable block name: exporters join fused names with ';', the last part names it."""
    part = name.rsplit(";", 1)[-1]
    return part if len(part) <= width else "…" + part[-(width - 1) :]


def block_value(block: dict[str, Any]) -> float:
    """The ranking value (output SQNR), falling back to the worst local SQNR."""
    value = block.get("output_sqnr_db")
    return float(block["score_db"] if value is None else value)


def fmt_db(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1f}"


def fmt_num(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def compact_rows(table: QTableWidget) -> None:
    """Rows one text line high (the default leaves room for two)."""
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)


class BlockChart(pg.PlotWidget):
    """One bar per block (output SQNR with only that block INT8, worst first), coloured by op
    type; a red outline on the selected block and a yellow mark on blocks kept in float."""

    def __init__(self) -> None:
        super().__init__(background="w")
        title = "Output SQNR with only this block INT8 (worst first)"
        self.setTitle(title, color="#333", size="9pt")
        self.setLabel("left", "output SQNR (dB)")
        self.setLabel("bottom", "block rank")
        self.showGrid(x=False, y=True, alpha=0.25)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMinimumHeight(160)
        # Top left: bars rise left to right (worst first), so that corner stays empty.
        self.legend = self.addLegend(
            offset=(60, 6), labelTextSize="8pt", labelTextColor="#333", brush=(255, 255, 255, 210)
        )
        self.bars: dict[str, pg.BarGraphItem] = {}  # one per op type, made once, then setOpts
        self.selection_bar = pg.BarGraphItem(
            x=[], height=[], width=0.8, brush=None, pen=pg.mkPen("#d62728", width=2)
        )
        self.selection_bar.setZValue(10)
        self.addItem(self.selection_bar)
        self.kept_marks = pg.ScatterPlotItem(
            symbol="t", size=9, pen=pg.mkPen("#222"), brush=pg.mkBrush("#ffd400")
        )
        self.kept_marks.setZValue(11)
        self.addItem(self.kept_marks)
        self.legend.addItem(self.kept_marks, "kept float")

    def show_blocks(self, blocks: list[dict[str, Any]], kept: set[int]) -> None:
        values = np.array([block_value(b) for b in blocks], dtype=float)
        shown = np.clip(values, -SQNR_CAP, SQNR_CAP)
        xs = np.arange(1, len(blocks) + 1, dtype=float)
        ops = [b["op_type"] for b in blocks]
        for op in sorted(set(ops)):
            if op not in self.bars:
                color = OP_COLORS.get(op, OTHER_COLOR)
                bar = pg.BarGraphItem(
                    x=[], height=[], width=0.8, brush=color, pen=pg.mkPen("#ffffff", width=0.5)
                )
                self.bars[op] = bar
                self.addItem(bar)
        for op, bar in self.bars.items():
            mask = np.array([o == op for o in ops], dtype=bool)
            bar.setOpts(x=xs[mask] if mask.size else [], height=shown[mask] if mask.size else [])
            self.legend.removeItem(bar)
            if mask.any():
                self.legend.addItem(bar, op)
        self.selection_bar.setOpts(x=[], height=[])
        self.mark_kept(blocks, kept)
        if len(blocks):
            lo, hi = float(min(0.0, shown.min())), float(max(1.0, shown.max()))
            self.setXRange(0.4, len(blocks) + 0.6, padding=0)
            self.setYRange(lo, hi * 1.12 + 1, padding=0)
        else:
            self.setXRange(0, 10, padding=0)
            self.setYRange(0, 40, padding=0)

    def mark_kept(self, blocks: list[dict[str, Any]], kept: set[int]) -> None:
        ordered = sorted(kept)
        heights = [max(0.0, min(SQNR_CAP, block_value(blocks[i]))) for i in ordered]
        top = max([1.0] + [min(SQNR_CAP, block_value(b)) for b in blocks])
        self.kept_marks.setData([i + 1 for i in ordered], [h + top * 0.05 for h in heights])

    def select(self, index: int, block: dict[str, Any]) -> None:
        self.selection_bar.setOpts(x=[index + 1], height=[min(SQNR_CAP, block_value(block))])

    def bar_at(self, scene_pos: Any, count: int) -> int:
        """The block index under a scene position, or -1."""
        vb = self.getViewBox()
        if not count or not vb.sceneBoundingRect().contains(scene_pos):
            return -1
        x = vb.mapSceneToView(scene_pos).x()
        index = int(math.floor(x + 0.5)) - 1
        return index if 0 <= index < count and abs(x - index - 1) <= 0.45 else -1


class TensorHistogram(QWidget):
    """An activation's histogram (linear or log counts) with its INT8 clip range and stats."""

    def __init__(self) -> None:
        super().__init__()
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "activation value")
        self.plot.setMinimumHeight(140)
        self.hist = pg.PlotDataItem(
            stepMode="center",
            fillLevel=0,
            brush=pg.mkBrush(76, 120, 168, 150),
            pen=pg.mkPen("#4c78a8"),
        )
        self.plot.addItem(self.hist)
        clip_pen = pg.mkPen("#d62728", width=2, style=Qt.PenStyle.DashLine)
        label_opts = {"position": 0.92, "color": "#d62728", "fill": (255, 255, 255, 200)}
        self.clip_lines = [
            pg.InfiniteLine(angle=90, pen=clip_pen, label="clip lo", labelOpts=label_opts),
            pg.InfiniteLine(angle=90, pen=clip_pen, label="clip hi", labelOpts=label_opts),
        ]
        for line in self.clip_lines:
            line.setVisible(False)
            self.plot.addItem(line)
        self.stats = QLabel("")
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.stats)

    def show_tensor(self, t: dict[str, Any] | None, log: bool, empty_text: str = "") -> None:
        if t is None:
            self.hist.setData([], [])
            for line in self.clip_lines:
                line.setVisible(False)
            self.stats.setText(empty_text)
            return
        counts = np.asarray(t["hist"], dtype=float)
        lo, hi = (float(v) for v in t["hist_range"])
        edges = np.linspace(lo, hi, len(counts) + 1)
        heights = np.log10(counts + 1) if log else counts
        self.hist.setData(edges, heights)
        self.plot.setLabel("left", "log10(count + 1)" if log else "count")
        clip = [float(v) for v in t["clip"]]
        for line, x in zip(self.clip_lines, clip):
            line.setPos(x)
            line.setVisible(True)
        x0, x1 = min(lo, clip[0]), max(hi, clip[1])
        pad = (x1 - x0) * 0.04 or 1.0
        self.plot.setXRange(x0 - pad, x1 + pad, padding=0)
        top = float(heights.max()) if counts.size else 1.0
        self.plot.setYRange(0, max(top, 1.0) * 1.08, padding=0)
        outside = ""
        if t["min"] < clip[0] or t["max"] > clip[1]:
            outside = " · <span style='color:#b71c1c'>values outside the clip range</span>"
        self.stats.setText(
            f"min {t['min']:.4g} · max {t['max']:.4g} · p99.99 |x| {t['p9999_abs']:.4g} · "
            f"channel spread {t['channel_spread']:.1f}×<br>clip [{clip[0]:.4g}, {clip[1]:.4g}] · "
            f"local SQNR {t['local_sqnr_db']:.1f} dB · accumulated "
            f"{t['accumulated_sqnr_db']:.1f} dB{outside}"
        )
