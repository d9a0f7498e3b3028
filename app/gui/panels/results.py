"""Results panel: evaluation / benchmark tables (sortable) and accuracy against latency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
)

from app.gui.panels.base import Panel, run_panel

LATENCY_KEYS = ("p50", "p90", "p99")


def flatten(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """evaluate()-shaped dict -> (column names, rows): one row per variant and backend."""
    metric_keys: list[str] = []
    for v in report.get("variants", []):
        for key, value in (v.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and key not in metric_keys:
                metric_keys.append(key)
    columns = ["variant", "backend", "provider", *metric_keys]
    columns += [f"latency {k} (ms)" for k in LATENCY_KEYS]
    rows = []
    for v in report.get("variants", []):
        metrics = v.get("metrics") or {}
        latency = v.get("latency_ms") or {}
        rows.append(
            [v.get("name", ""), v.get("backend", ""), v.get("provider", "")]
            + [metrics.get(k) for k in metric_keys]
            + [latency.get(k) for k in LATENCY_KEYS]
        )
    return columns, rows


def cell_text(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class ResultsPanel(Panel):
    """Loads result JSON files (or dicts) and shows them as a table and a scatter plot."""

    title = "Results"
    settings_key = "results"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report: dict[str, Any] = {}
        row = QHBoxLayout()
        load = QPushButton("Open results…")
        load.clicked.connect(self._choose)
        self.metric = QComboBox()
        self.metric.currentTextChanged.connect(self._plot)
        self.caption = QLabel("No results loaded.")
        row.addWidget(load)
        row.addWidget(QLabel("Accuracy metric"))
        row.addWidget(self.metric)
        row.addWidget(self.caption, 1)
        self.body.addLayout(row)
        self.model = QStandardItemModel(0, 0, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.verticalHeader().setVisible(False)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "latency p50 (ms)")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.scatter = pg.ScatterPlotItem(
            size=11, pen=pg.mkPen("#333"), brush=pg.mkBrush("#d62728")
        )
        self.plot.addItem(self.scatter)
        self.point_labels: list[pg.TextItem] = []
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        split.setSizes([260, 320])
        self.body.addWidget(split, 1)

    def _choose(self) -> None:
        start = str(self.setting("last_dir", ""))
        path, _ = QFileDialog.getOpenFileName(self, "Results", start, "JSON (*.json)")
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path) -> bool:
        try:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.messages.set("load", f"{path}: not a readable results file ({exc})")
            return False
        self.set_setting("last_dir", str(Path(path).parent))
        self.messages.clear("load")
        self.load(report)
        return True

    def load(self, report: dict[str, Any]) -> None:
        """Show an evaluate()-shaped dict."""
        if not isinstance(report, dict) or not report.get("variants"):
            self.messages.set("load", "this file has no per-variant results", "warning")
            return
        self.report = report
        columns, rows = flatten(report)
        self.model.clear()
        self.model.setHorizontalHeaderLabels(columns)
        for values in rows:
            items = []
            for value in values:
                item = QStandardItem(cell_text(value))
                sort_key = value if value is not None else float("-inf")
                item.setData(sort_key, Qt.ItemDataRole.UserRole)
                item.setEditable(False)
                items.append(item)
            self.model.appendRow(items)
        self.table.resizeColumnsToContents()
        metrics = columns[3 : len(columns) - len(LATENCY_KEYS)]
        self.metric.blockSignals(True)
        self.metric.clear()
        self.metric.addItems(metrics)
        self.metric.blockSignals(False)
        self.caption.setText(f"{report.get('task', '')}: {len(rows)} variant/backend rows")
        self._plot()

    def _plot(self) -> None:
        for label in self.point_labels:
            self.plot.removeItem(label)
        self.point_labels.clear()
        metric = self.metric.currentText()
        xs, ys, names = [], [], []
        for v in self.report.get("variants", []):
            x = (v.get("latency_ms") or {}).get("p50")
            y = (v.get("metrics") or {}).get(metric)
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                xs.append(float(x))
                ys.append(float(y))
                names.append(f"{v.get('name')} · {v.get('backend')}")
        self.scatter.setData(xs, ys)
        self.plot.setLabel("left", metric or "accuracy")
        for x, y, name in zip(xs, ys, names):
            label = pg.TextItem(name, color="#222", anchor=(0, 1))
            label.setPos(x, y)
            self.plot.addItem(label)
            self.point_labels.append(label)


def main() -> int:
    return run_panel(lambda state: ResultsPanel(state), load_model=False)


if __name__ == "__main__":
    raise SystemExit(main())
