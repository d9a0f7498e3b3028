"""The Precision panel's parts: the per-block SQNR bar chart, the block table with its
keep-float ticks, the activation histogram with its clip range, and their formatting helpers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

OP_COLORS = {"Conv": "#4c78a8", "ConvTranspose": "#b279a2", "Gemm": "#f58518", "MatMul": "#54a24b"}
OTHER_COLOR = "#9d9d9d"
SQNR_CAP = 90.0  # dB; "no measurable noise" is reported as 120 and would flatten every other bar


TF_WRAPPER = "StatefulPartitionedCall/"  # TensorFlow's scope around every op of a saved model


def block_part(name: str) -> str:
    """The part of a block name that names it: exporters join fused names with ';' (the last
    names the block), and TensorFlow wraps every op in the same scope."""
    return name.rsplit(";", 1)[-1].removeprefix(TF_WRAPPER)


def short_block(name: str, width: int = 34) -> str:
    """A readable block name: exporters join fused names with ';', the last part names it; a
    longer part loses its middle (TensorFlow's scope at the start and the op at the end both
    tell which layer it is; cutting the start left rows of look-alike tails)."""
    part = block_part(name)
    if len(part) <= width:
        return part
    head = (width - 1) // 3
    return part[:head] + "…" + part[-(width - 1 - head) :]


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
        self.stats.setToolTip(SQNR_TIP)
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


SQNR_TIP = (
    "Local SQNR: this tensor's own rounding and clipping, the INT8 graph's value at this point "
    "before vs after its Q/DQ (after any ReLU/Clip the quantizer folded into the Q).\n"
    "Accumulated SQNR: FP32's value vs the INT8 graph's at this point, every earlier layer's "
    "noise included, so it is normally the lower of the two."
)


BLOCK_COLUMNS = ["#", "block", "op", "output SQNR", "worst local", "weight SQNR", "keep float"]
KEEP_COL = BLOCK_COLUMNS.index("keep float")
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


class BlockTable(QTableWidget):
    """The blocks, worst first, sortable, with a keep-float tick per block; rows remember their
    block's index so sorting never confuses which block a row is."""

    kept_changed = Signal()

    def __init__(self) -> None:
        super().__init__(0, len(BLOCK_COLUMNS))
        self.setHorizontalHeaderLabels(BLOCK_COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, tip in (
            (3, "Model-output SQNR vs FP32 with only this block INT8 (the ranking)"),
            (
                4,
                "Worst local SQNR of the block's activations: its own quantization noise "
                "(accumulated SQNR, with every earlier layer's noise, is normally lower)",
            ),
            (5, "SQNR of the block's INT8 weights"),
        ):
            self.horizontalHeaderItem(col).setToolTip(tip)
        compact_rows(self)
        # a narrow column keeps both ends of a name; word wrap (on by default) would break it
        # at a '/' and cut the one line a row shows at its end
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.itemChanged.connect(self._item_changed)
        self.setSortingEnabled(True)

    def fill(self, blocks: list[dict[str, Any]]) -> None:
        from app.gui.panels.variants import SortItem  # the panels' numeric-sort item

        self.blockSignals(True)
        self.setSortingEnabled(False)
        self.setRowCount(len(blocks))
        for i, b in enumerate(blocks):
            values: list[tuple[str, Any]] = [
                (str(i + 1), i + 1),
                (block_part(b["block"]), None),  # the view elides its middle to fit
                (b["op_type"], None),
                (fmt_db(b.get("output_sqnr_db")), b.get("output_sqnr_db")),
                (fmt_db(b.get("score_db")), b.get("score_db")),
                (fmt_db(b.get("weight_sqnr_db")), b.get("weight_sqnr_db")),
            ]
            for c, (text, key) in enumerate(values):
                item = SortItem(text)
                item.setData(Qt.ItemDataRole.UserRole, key if key is not None else -1e9)
                if c == 0:
                    item.setData(Qt.ItemDataRole.UserRole + 1, i)  # the block's index
                if c == 1:
                    item.setToolTip(b["block"])
                if c >= 3 or c == 0:
                    item.setTextAlignment(RIGHT)
                self.setItem(i, c, item)
            keep = SortItem("")
            keep.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            keep.setCheckState(Qt.CheckState.Unchecked)
            keep.setData(Qt.ItemDataRole.UserRole, 0)
            self.setItem(i, KEEP_COL, keep)
        self.setSortingEnabled(True)
        self.sortItems(0, Qt.SortOrder.AscendingOrder)
        self.blockSignals(False)

    def block_at(self, row: int) -> int:
        item = self.item(row, 0)
        return int(item.data(Qt.ItemDataRole.UserRole + 1)) if item is not None else -1

    def row_of(self, index: int) -> int:
        for row in range(self.rowCount()):
            if self.block_at(row) == index:
                return row
        return -1

    def kept(self) -> set[int]:
        out = set()
        for row in range(self.rowCount()):
            item = self.item(row, KEEP_COL)
            if item is not None and item.checkState() == Qt.CheckState.Checked:
                out.add(self.block_at(row))
        return out

    def set_kept(self, indices: set[int]) -> None:
        """Tick exactly these blocks' keep-float boxes."""
        self.blockSignals(True)
        self.setSortingEnabled(False)
        for row in range(self.rowCount()):
            item = self.item(row, KEEP_COL)
            on = self.block_at(row) in indices
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, int(on))
        self.setSortingEnabled(True)
        self.blockSignals(False)
        self.kept_changed.emit()

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == KEEP_COL:
            self.blockSignals(True)  # the sort key below is data too
            item.setData(Qt.ItemDataRole.UserRole, int(item.checkState() == Qt.CheckState.Checked))
            self.blockSignals(False)
            self.kept_changed.emit()
