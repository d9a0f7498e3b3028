"""Results panel: evaluation / benchmark tables (sortable) and accuracy against latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
)

from app.core import defaults
from app.core.errors import UserError
from app.core.eval.reports import (
    all_backends,
    caption,
    cell_text,
    default_metric,
    diff_text,
    flatten,
    interval_of,
    labels_note,
    latency_axis,
    load_results,
    metric_columns,
    scatter_points,
    with_interval,
)
from app.gui.evaluation_job import run_evaluation
from app.gui.panels.advice_box import AdviceBox
from app.gui.panels.base import BackendStatuses, Panel, fill_backend_combo, run_panel
from app.gui.plot_labels import label_anchors, label_reach
from app.gui.widgets import EvalFolderRow

ALL_BACKENDS = "all backends (their evaluations of the same images)"
INTERVALS_NOTE = (
    " · [lo, hi]: 95% interval, bootstrap over images; hover for the difference to fp32"
)


class ResultsPanel(Panel):
    """The workspace's evaluation and benchmark results (loaded when a model opens, refreshed
    after an evaluation run), or any results file, as a sortable table and a scatter plot."""

    title = "Results"
    settings_key = "results"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report: dict[str, Any] = {}
        self.report_paths: list[Path | None] = []  # None: every backend's evaluation at once
        self.combined: dict[str, Any] | None = None
        self.body.addWidget(self._build_evaluate())
        row = QHBoxLayout()
        self.reports = QComboBox()
        self.reports.setMinimumWidth(220)
        self.reports.setPlaceholderText("no results yet")
        self.reports.currentIndexChanged.connect(self._report_chosen)
        load = QPushButton("Open file…")
        load.clicked.connect(self._choose)
        self.metric_box = QComboBox()
        self.metric_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.metric_box.currentTextChanged.connect(self._plot)
        self.chosen_metric = ""  # the user's own pick: kept across reports that have it
        self.metric_box.textActivated.connect(lambda text: setattr(self, "chosen_metric", text))
        self.caption = QLabel("No results loaded.")
        self.caption.setWordWrap(True)  # a long caption wraps, not widens the whole window
        row.addWidget(QLabel("Results"))
        row.addWidget(self.reports)
        row.addWidget(load)
        row.addSpacing(12)
        row.addWidget(QLabel("Accuracy axis"))
        row.addWidget(self.metric_box)
        row.addWidget(self.caption, 1)
        self.body.addLayout(row)
        # which variant to use on each backend, judged on the accuracy axis
        self.advice = AdviceBox(float(self.setting("target_drop", defaults.TARGET_DROP)))
        self.advice.target_changed.connect(lambda v: self.set_setting("target_drop", v))
        self.body.addWidget(self.advice)
        self.model = QStandardItemModel(0, 0, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        # the report's order (fp32 first) until a column is clicked (not by name, descending)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.verticalHeader().setVisible(False)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "latency p50 (ms)")
        for side in ("bottom", "left"):
            # values are already ms and percent: an SI prefix made it "(ms) (x0.001)"
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.scatter = pg.ScatterPlotItem(
            size=11, pen=pg.mkPen("#333"), brush=pg.mkBrush("#d62728")
        )
        self.plot.addItem(self.scatter)
        self.point_labels: list[pg.TextItem] = []
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        split.setSizes([200, 360])
        self.body.addWidget(split, 1)
        self.statuses = BackendStatuses(self.pool)
        self.statuses.ready.connect(lambda s: fill_backend_combo(self.backend, s))
        self.statuses.load()
        self.state.variants_changed.connect(self._fill_variants)
        if self.state.spec is not None:
            self.on_spec_changed(self.state.spec)

    def _build_evaluate(self) -> QGroupBox:
        box = QGroupBox("Evaluate")
        outer = QVBoxLayout(box)
        row = EvalFolderRow(
            self,
            str(self.setting("images", "")),
            str(self.setting("labels", "")),
            "evaluation images (not the calibration ones)",
            "YOLO .txt folder, COCO .json, file,class CSV or class subfolders",
        )
        self.images, self.labels = row.images, row.labels
        outer.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Variants"))
        self.variant_row = QHBoxLayout()
        self.variant_checks: dict[str, QCheckBox] = {}
        row2.addLayout(self.variant_row)
        self.backend = QComboBox()
        self.backend.addItem(defaults.BACKEND, defaults.BACKEND)
        row2.addSpacing(12)
        row2.addWidget(QLabel("Backend"))
        row2.addWidget(self.backend)
        self.eval_btn = QPushButton("Evaluate")
        self.eval_btn.clicked.connect(lambda: self.evaluate())
        row2.addWidget(self.eval_btn)
        row2.addWidget(self.make_job_bar("", [self.eval_btn]), 2)
        outer.addLayout(row2)
        return box

    # model and workspace ---------------------------------------------------------------------
    def on_spec_changed(self, spec: object) -> None:
        self._fill_variants()
        self.load_workspace_results()

    def _fill_variants(self) -> None:
        names = self.state.variant_names()
        ticked = {n for n, box in self.variant_checks.items() if box.isChecked()}
        for box in self.variant_checks.values():
            self.variant_row.removeWidget(box)
            box.hide()  # at once: deleteLater alone leaves it painted under its replacement
            box.deleteLater()
        self.variant_checks = {}
        for name in names:
            box = QCheckBox(name)
            # first time (or all unticked): the variants `evaluate` scores by default
            box.setChecked(name in ticked if ticked else name in defaults.VARIANT_ORDER)
            self.variant_row.addWidget(box)
            self.variant_checks[name] = box

    def load_workspace_results(self, select: Path | None = None) -> int:
        """List the workspace's results files and show the newest evaluation; returns how many."""
        self.report_paths = []
        if self.state.spec is not None:
            try:
                self.report_paths = self.state.workspace().result_files()
            except (UserError, OSError) as exc:
                self.messages.set("workspace", str(exc), "warning")
        # first, when two or more backends scored the same images: all of them in one table
        self.combined = all_backends(self.report_paths)
        if self.combined is not None:  # it holds the newest evaluation: shown with the others
            select = None if select == self.report_paths[0] else select
            self.report_paths.insert(0, None)
        self.reports.blockSignals(True)
        self.reports.clear()
        for path in self.report_paths:
            self.reports.addItem(ALL_BACKENDS if path is None else path.name, str(path))
        self.reports.setCurrentIndex(-1)
        self.reports.blockSignals(False)
        if self.report_paths:
            index = self.report_paths.index(select) if select in self.report_paths else 0
            self.reports.setCurrentIndex(index)
        else:
            self._clear()
        return len(self.report_paths)

    def _report_chosen(self, index: int) -> None:
        if 0 <= index < len(self.report_paths):
            path = self.report_paths[index]
            if path is None:
                self.load(self.combined or {})
            else:
                self.load_file(path, remember=False)

    # evaluating ------------------------------------------------------------------------------
    def evaluate(self) -> bool:
        """Run `evaluate` in the worker; False with an inline message when it cannot start."""
        if self.job is not None:
            return False
        images, labels = self.images.text().strip(), self.labels.text().strip()
        variants = [n for n, box in self.variant_checks.items() if box.isChecked()]
        try:
            ws = self.state.workspace()
            if not images or not Path(images).is_dir():
                raise UserError(f"'{images}': choose a folder of evaluation images")
            if labels and not Path(labels).exists():
                raise UserError(
                    f"{labels}: no such labels folder or file; give a YOLO .txt folder or "
                    "COCO .json (detectors), a file,class CSV or class-named subfolders "
                    "(classifiers)"
                )
            if not variants:
                raise UserError("tick at least one variant to evaluate")
            self.state.check_stale(variants)  # a stale variant only by the user's choice
        except UserError as exc:
            self.messages.set("evaluate", str(exc))
            return False
        self.messages.clear("evaluate")
        self.messages.clear("job")
        self.set_setting("images", images)
        self.set_setting("labels", labels)
        return self.run_job(
            run_evaluation,
            ws,
            images,
            labels,
            variants,
            self.backend.currentData() or defaults.BACKEND,
            name="evaluate",
            on_finished=self._evaluated,
        )

    def _evaluated(self, path: Path) -> None:
        self.status.setText(f"saved {path.name}")
        self.load_workspace_results(select=path)

    # showing ---------------------------------------------------------------------------------
    def _choose(self) -> None:
        start = str(self.setting("last_dir", "") or "")
        path = self.pick_file("Results", start, "JSON (*.json)")
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path, remember: bool = True) -> bool:
        """Show a results file: an evaluation (with the workspace's benchmark merged in when
        it has matching rows) or a benchmark alone."""
        path = Path(path)
        try:
            report = load_results(path)
        except UserError as exc:
            self.messages.set("load", str(exc))
            return False
        if remember:
            self.set_setting("last_dir", str(path.parent))
        self.messages.clear("load")
        return self.load(report)

    def _clear(self) -> None:
        self.report = {}
        self.model.clear()
        self.metric_box.clear()
        self.scatter.setData([], [])
        for label in self.point_labels:
            self.plot.removeItem(label)
        self.point_labels.clear()
        self.caption.setText("No results yet: evaluate above, or `int8-studio evaluate`.")
        self.advice.show_for({}, "")
        self.messages.clear("labels")
        self.messages.clear("preprocessing")
        self.messages.clear("refused")
        self.messages.clear("overlap")

    def load(self, report: dict[str, Any]) -> bool:
        """Show an evaluate()-shaped dict."""
        if not isinstance(report, dict) or not report.get("variants"):
            self.messages.set("load", "this file has no per-variant results", "warning")
            return False
        self.report = report
        columns, rows = flatten(report)
        self.model.clear()
        self.model.setHorizontalHeaderLabels(columns)
        measured = set(metric_columns(columns))
        variants = report.get("variants", [])
        fp32 = {v.get("backend"): v for v in variants if v.get("name") == "fp32"}
        for variant, values in zip(variants, rows):
            items = []
            for column, value in zip(columns, values):
                if column in measured:  # with its interval; the difference to fp32 on hover
                    item = QStandardItem(with_interval(value, interval_of(variant, column)))
                    item.setToolTip(diff_text(variant, fp32.get(variant.get("backend")), column))
                else:
                    item = QStandardItem(cell_text(value))
                sort_key = value if value is not None else float("-inf")
                item.setData(sort_key, Qt.ItemDataRole.UserRole)
                item.setEditable(False)
                items.append(item)
            self.model.appendRow(items)
        self.table.resizeColumnsToContents()
        metrics = metric_columns(columns)
        keep = self.chosen_metric if self.chosen_metric in metrics else default_metric(metrics)
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        self.metric_box.addItems(metrics)
        self.metric_box.setCurrentText(keep)
        self.metric_box.blockSignals(False)
        self.caption.setText(caption(report) + (INTERVALS_NOTE if report.get("intervals") else ""))
        note = labels_note(report)
        if note:
            self.messages.set("labels", note, "warning")
        else:
            self.messages.clear("labels")
        if report.get("preprocessing_alarm"):  # FP32 itself misfed: INT8 figures mean little
            self.messages.set("preprocessing", report["preprocessing_alarm"], "warning")
        else:
            self.messages.clear("preprocessing")
        if report.get("calibration_overlap"):  # INT8 scored on its own calibration images
            self.messages.set("overlap", report["calibration_overlap"], "warning")
        else:
            self.messages.clear("overlap")
        refused = report.get("refused") or {}
        if refused:  # e.g. a Q/DQ graph OpenVINO computes differently from ONNX Runtime
            lines = [f"not evaluated: {name}: {why}" for name, why in refused.items()]
            self.messages.set("refused", "\n".join(lines), "warning")
        else:
            self.messages.clear("refused")
        self._plot()
        return True

    def _plot(self) -> None:
        self.advice.show_for(self.report, self.metric_box.currentText())
        for label in self.point_labels:
            self.plot.removeItem(label)
        self.point_labels.clear()
        metric = self.metric_box.currentText()
        xs, ys, names = scatter_points(self.report, metric)
        self.plot.setLabel("bottom", latency_axis(self.report))
        self.scatter.setData(xs, ys)
        self.plot.setLabel("left", metric or "accuracy")
        anchors = label_anchors(xs, ys, label_reach(names, self.plot))
        for x, y, name, anchor in zip(xs, ys, names, anchors):
            self.point_labels.append(label := pg.TextItem(name, color="#222", anchor=anchor))
            label.setPos(x, y)
            self.plot.addItem(label)
        if xs:
            self._fit(xs, ys)

    def _fit(self, xs: list[float], ys: list[float]) -> None:
        """Room around the points (and their labels, which extend to the right)."""
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        dx = (x1 - x0) or max(abs(x1) * 0.2, 1.0)
        dy = (y1 - y0) or max(abs(y1) * 0.2, 1.0)
        self.plot.setXRange(max(0.0, x0 - 0.15 * dx), x1 + 0.45 * dx, padding=0)
        self.plot.setYRange(y0 - 0.15 * dy, y1 + 0.2 * dy, padding=0)


def main() -> int:
    return run_panel(lambda state: ResultsPanel(state), load_model=False)


if __name__ == "__main__":
    raise SystemExit(main())
