"""The Precision panel's right-hand side: the selected block's tensors and histogram, and the
before/after and auto-search result tables."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
)

from app.gui.precision_widgets import TensorHistogram, compact_rows, fmt_db, fmt_num, short_block

TRIAL_COLUMNS = ["trial", "float ops", "metric", "drop", "p50 (ms)", "passes"]
COMPARE_COLUMNS = ["", "variant", "float ops", "metric", "drop", "p50 (ms)"]


class BlockDetail(QGroupBox):
    """One block: its title, a picker over its quantized tensors (worst first) and the chosen
    tensor's histogram with the calibration clip range."""

    log_toggled = Signal(bool)

    def __init__(self, log_counts: bool = True) -> None:
        super().__init__("Selected block")
        self.tensors: dict[str, dict[str, Any]] = {}
        self.selected = -1
        lay = QVBoxLayout(self)
        self.title = QLabel("Click a bar or a row.")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.title)
        row = QHBoxLayout()
        self.tensor_box = QComboBox()
        self.tensor_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.tensor_box.setMinimumContentsLength(16)
        self.tensor_box.currentIndexChanged.connect(lambda _i: self.show_tensor())
        self.log_counts = QCheckBox("log counts")
        self.log_counts.setChecked(log_counts)
        self.log_counts.toggled.connect(self._log_toggled)
        row.addWidget(QLabel("Tensor"))
        row.addWidget(self.tensor_box, 1)
        row.addWidget(self.log_counts)
        lay.addLayout(row)
        self.histogram = TensorHistogram()
        lay.addWidget(self.histogram, 1)

    def _log_toggled(self, on: bool) -> None:
        self.log_toggled.emit(on)
        self.show_tensor()

    def show_block(self, index: int, block: dict[str, Any] | None) -> None:
        """Show block `index` (-1 and None: nothing selected)."""
        self.selected = index
        self.tensor_box.blockSignals(True)
        self.tensor_box.clear()
        if block is None:
            self.title.setText("Click a bar or a row.")
            self.tensor_box.blockSignals(False)
            self.show_tensor()
            return
        self.title.setText(
            f"<b>#{index + 1} {short_block(block['block'], 60)}</b> ({block['op_type']}) · "
            f"output SQNR {fmt_db(block.get('output_sqnr_db'))} dB · weights "
            f"{fmt_db(block.get('weight_sqnr_db'))} dB"
        )
        self.title.setToolTip(block["block"])
        tensors = sorted(
            (self.tensors[n] for n in block.get("tensors", []) if n in self.tensors),
            key=lambda t: t["local_sqnr_db"],
        )
        for t in tensors:
            self.tensor_box.addItem(f"{t['name']} ({t['local_sqnr_db']:.1f} dB)", t["name"])
        self.tensor_box.setCurrentIndex(0 if tensors else -1)
        self.tensor_box.blockSignals(False)
        self.show_tensor()

    def current_tensor(self) -> dict[str, Any] | None:
        return self.tensors.get(str(self.tensor_box.currentData() or ""))

    def show_tensor(self) -> None:
        empty = "" if self.selected < 0 else "No quantized activation in this block."
        self.histogram.show_tensor(self.current_tensor(), self.log_counts.isChecked(), empty)


def _small_table(columns: list[str], stretch: int) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    compact_rows(table)
    return table


class ResultTables(QTabWidget):
    """ "Before / after" (FP32, all-INT8, the new variant from one scorer) and "Auto trials"."""

    def __init__(self) -> None:
        super().__init__()
        self.compare = _small_table(COMPARE_COLUMNS, 1)
        self.trials = _small_table(TRIAL_COLUMNS, 0)
        self.addTab(self.compare, "Before / after")
        self.addTab(self.trials, "Auto trials")

    def clear(self) -> None:
        self.compare.setRowCount(0)
        self.trials.setRowCount(0)

    def show_trials(self, report: dict[str, Any]) -> None:
        """The search's trials: float compute ops vs accuracy vs latency; the chosen one bold."""
        trials = report.get("trials") or []
        self.trials.setRowCount(len(trials))
        self.trials.setHorizontalHeaderItem(2, QTableWidgetItem(str(report.get("metric", ""))))
        # with labels, the drop that decides is the labelled one; agreement is in column 2
        lmetric = report.get("labelled_metric")
        drop = f"{lmetric} drop" if lmetric else "drop"
        self.trials.setHorizontalHeaderItem(3, QTableWidgetItem(drop))
        bold = QFont()
        bold.setBold(True)
        for r, t in enumerate(trials):
            values = [
                t.get("trial"),
                t.get("compute_ops_float"),
                t.get("value"),
                t.get("labelled_drop", t.get("drop")),
                t.get("latency_p50_ms"),
                "yes" if t.get("passes") else "no",
            ]
            for c, value in enumerate(values):
                item = QTableWidgetItem(fmt_num(value))
                item.setToolTip(str(t.get("trial")))
                if t.get("trial") == report.get("chosen_trial"):
                    item.setFont(bold)
                if c == 5:
                    item.setForeground(pg.mkColor("#2e7d32" if t.get("passes") else "#b71c1c"))
                self.trials.setItem(r, c, item)
        self.setCurrentWidget(self.trials)

    def show_compare(self, result: dict[str, Any]) -> None:
        """FP32, before and after: accuracy and latency from one scorer."""
        rows = result.get("rows") or []
        self.compare.setRowCount(len(rows))
        self.compare.setHorizontalHeaderItem(3, QTableWidgetItem(str(result.get("metric", ""))))
        for r, row in enumerate(rows):
            values = [
                row["role"],
                row["variant"],
                row.get("float_ops"),
                row["value"],
                row["drop"],
                row["latency"],
            ]
            for c, value in enumerate(values):
                self.compare.setItem(r, c, QTableWidgetItem(fmt_num(value)))
        self.setCurrentWidget(self.compare)
