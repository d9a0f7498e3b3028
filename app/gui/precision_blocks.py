"""The Precision panel's left-hand side: the per-block error chart over the block table, kept in
step (click a bar or a row to select a block; tick rows to keep blocks float)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from app.gui.precision_widgets import BlockChart, BlockTable, fmt_db

NO_ANALYSIS = "Analyse to see which blocks INT8 hurts most."


class BlockExplorer(QSplitter):
    """Chart and table of an analysis' blocks; emits `block_selected(index)` on a click."""

    block_selected = Signal(int)

    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Vertical)
        self.blocks: list[dict[str, Any]] = []
        self.selected = -1
        self.chart = BlockChart()
        self.chart.scene().sigMouseClicked.connect(self._chart_clicked)
        self.chart.scene().sigMouseMoved.connect(self._chart_hovered)
        self.caption = QLabel(NO_ANALYSIS)
        self.caption.setStyleSheet("color:#555;")
        self.table = BlockTable()
        self.table.itemSelectionChanged.connect(self._row_selected)
        self.table.kept_changed.connect(
            lambda: self.chart.mark_kept(self.blocks, self.table.kept())
        )
        top = QWidget()
        lay = QVBoxLayout(top)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.chart, 1)
        lay.addWidget(self.caption)
        self.addWidget(top)
        self.addWidget(self.table)
        self.setSizes([300, 260])

    def show_blocks(self, blocks: list[dict[str, Any]], caption: str = NO_ANALYSIS) -> None:
        self.blocks = blocks
        self.selected = -1
        self.table.fill(blocks)
        self.chart.show_blocks(blocks, self.table.kept())
        self.caption.setText(caption)

    def select(self, index: int) -> bool:
        """Select block `index` in the chart and the table; False if it was already (or is not
        a block)."""
        if not 0 <= index < len(self.blocks) or index == self.selected:
            return False
        self.selected = index
        row = self.table.row_of(index)
        if row >= 0 and self.table.currentRow() != row:
            self.table.blockSignals(True)
            self.table.selectRow(row)
            self.table.blockSignals(False)
            self.table.scrollToItem(self.table.item(row, 0))
        self.chart.select(index, self.blocks[index])
        return True

    def _row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.block_selected.emit(self.table.block_at(rows[0].row()))

    def _chart_clicked(self, event: Any) -> None:
        index = self.chart.bar_at(event.scenePos(), len(self.blocks))
        if index >= 0:
            self.block_selected.emit(index)

    def _chart_hovered(self, pos: Any) -> None:
        index = self.chart.bar_at(pos, len(self.blocks))
        if index >= 0:
            b = self.blocks[index]
            self.chart.setToolTip(
                f"#{index + 1} {b['block']}\n{b['op_type']} · output SQNR "
                f"{fmt_db(b.get('output_sqnr_db'))} dB · worst local {fmt_db(b.get('score_db'))} dB"
            )
        else:
            self.chart.setToolTip("")
