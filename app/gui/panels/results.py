"""Results panel: evaluation / benchmark tables (sortable) and accuracy against latency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
)

from app.core.atomic import write_json
from app.core.errors import UserError
from app.core.model.workspace import Workspace
from app.gui.panels.base import BackendStatuses, Panel, fill_backend_combo, run_panel
from app.gui.widgets import EvalFolderRow
from app.gui.workers import Job

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
    has_bench = any(v.get("bench") for v in report.get("variants", []))
    if has_bench:
        columns += ["bench p50 (ms)", "bench fps"]
    rows = []
    for v in report.get("variants", []):
        metrics = v.get("metrics") or {}
        latency = v.get("latency_ms") or {}
        rows.append(
            [v.get("name", ""), v.get("backend", ""), provider_text(v.get("provider", ""))]
            + [metrics.get(k) for k in metric_keys]
            + [latency.get(k) for k in LATENCY_KEYS]
            + ([(v.get("bench") or {}).get(k) for k in ("p50", "fps")] if has_bench else [])
        )
    return columns, rows


def provider_text(provider: Any) -> str:
    """'CPUExecutionProvider' -> 'CPU' (the full name is in the file)."""
    return str(provider or "").removesuffix("ExecutionProvider")


def bench_rows(bench: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """bench.json results by (variant, backend)."""
    return {
        (str(r["variant"]), str(r.get("backend", ""))): r
        for r in bench.get("results", [])
        if "variant" in r and "latency_ms" in r
    }


def bench_as_report(bench: dict[str, Any]) -> dict[str, Any]:
    """A bench.json alone, in evaluate()'s shape (throughput as the metric)."""
    return {
        "task": "benchmark",
        "variants": [
            {
                "name": variant,
                "backend": backend,
                "provider": r.get("provider", ""),
                "metrics": {"throughput_fps": r.get("throughput_fps")},
                "latency_ms": r["latency_ms"],
            }
            for (variant, backend), r in bench_rows(bench).items()
        ],
    }


def with_bench(report: dict[str, Any], bench: dict[str, Any]) -> dict[str, Any]:
    """An evaluation with the benchmark's infer-only p50 and FPS added to matching rows."""
    rows = bench_rows(bench)
    out = dict(report, variants=[])
    for v in report.get("variants", []):
        r = rows.get((str(v.get("name")), str(v.get("backend"))))
        if r is not None:
            v = dict(v, bench={"p50": r["latency_ms"].get("p50"), "fps": r.get("throughput_fps")})
        out["variants"].append(v)
    return out


def same_model(report: dict[str, Any], bench: dict[str, Any], folder: Path) -> bool:
    """Whether a bench.json beside an evaluation measured the same model: both record the
    model's hash and they match, or (files from before the hash was recorded) both sit in one
    workspace's results folder, which belongs to one model."""
    a, b = report.get("model_sha256"), bench.get("model_sha256")
    if a and b:
        return a == b
    return not (a or b) and folder.name == "results" and (folder.parent / "spec.json").is_file()


def workspace_reports(root: Path) -> list[Path]:
    """The workspace's evaluation reports, newest first, then its benchmark."""
    folder = root / "results"
    reports = sorted(folder.glob("evaluate-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    bench = folder / "bench.json"
    return reports + ([bench] if bench.is_file() else [])


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable results file ({exc})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a results file (expected a JSON object)")
    return data


def run_evaluation(
    ws: Workspace,
    images: str,
    labels: str,
    variants: list[str],
    backend: str,
    *,
    progress: Any,
    cancel: Any,
) -> Path:
    """Worker side: evaluate, then save the report where the CLI does; returns its path."""
    from app.backends.factory import make_runner
    from app.core.eval.evaluate import evaluate

    truth: dict[str, Any] = {}
    if labels:
        key = "coco_json" if labels.lower().endswith(".json") else "labels_dir"
        truth = {key: labels}
    report = evaluate(
        ws,
        images,
        variants=variants,
        backend=backend,
        runner_factory=make_runner,
        progress=progress,
        cancel=cancel,
        **truth,
    )
    path = ws.path("results", f"evaluate-{backend}.json")
    write_json(path, report)
    return path


def cell_text(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class ResultsPanel(Panel):
    """The workspace's evaluation and benchmark results (loaded when a model opens, refreshed
    after an evaluation run), or any results file, as a sortable table and a scatter plot."""

    title = "Results"
    settings_key = "results"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report: dict[str, Any] = {}
        self.job: Job | None = None
        self.report_paths: list[Path] = []
        self.body.addWidget(self._build_evaluate())
        row = QHBoxLayout()
        self.reports = QComboBox()
        self.reports.setMinimumWidth(220)
        self.reports.setPlaceholderText("no results yet")
        self.reports.currentIndexChanged.connect(self._report_chosen)
        load = QPushButton("Open file…")
        load.clicked.connect(self._choose)
        self.metric_box = QComboBox()
        self.metric_box.setMinimumWidth(160)
        self.metric_box.currentTextChanged.connect(self._plot)
        self.caption = QLabel("No results loaded.")
        row.addWidget(QLabel("Results"))
        row.addWidget(self.reports)
        row.addWidget(load)
        row.addSpacing(12)
        row.addWidget(QLabel("Accuracy axis"))
        row.addWidget(self.metric_box)
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
            "labels: YOLO .txt folder or COCO .json (default ../labels)",
        )
        self.images, self.labels = row.images, row.labels
        outer.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Variants"))
        self.variant_row = QHBoxLayout()
        self.variant_checks: dict[str, QCheckBox] = {}
        row2.addLayout(self.variant_row)
        self.backend = QComboBox()
        self.backend.addItem("ort-cpu", "ort-cpu")
        row2.addSpacing(12)
        row2.addWidget(QLabel("Backend"))
        row2.addWidget(self.backend)
        self.eval_btn = QPushButton("Evaluate")
        self.eval_btn.clicked.connect(lambda: self.evaluate())
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(lambda: self.job and self.job.cancel())
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.status = QLabel("")
        row2.addWidget(self.eval_btn)
        row2.addWidget(self.cancel_btn)
        row2.addWidget(self.progress, 1)
        row2.addWidget(self.status, 1)
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
            box.setChecked(name in ticked or not ticked)
            self.variant_row.addWidget(box)
            self.variant_checks[name] = box

    def load_workspace_results(self, select: Path | None = None) -> int:
        """List the workspace's results files and show the newest evaluation; returns how many."""
        self.report_paths = []
        if self.state.spec is not None:
            try:
                self.report_paths = workspace_reports(self.state.workspace().root)
            except (UserError, OSError) as exc:
                self.messages.set("workspace", str(exc), "warning")
        self.reports.blockSignals(True)
        self.reports.clear()
        for path in self.report_paths:
            self.reports.addItem(path.name, str(path))
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
            self.load_file(self.report_paths[index], remember=False)

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
                raise UserError(f"{labels}: no such label folder or COCO file")
            if not variants:
                raise UserError("tick at least one variant to evaluate")
        except UserError as exc:
            self.messages.set("evaluate", str(exc))
            return False
        self.messages.clear("evaluate")
        self.messages.clear("job")
        self.set_setting("images", images)
        self.set_setting("labels", labels)
        self.progress.setValue(0)
        self.status.setText("starting…")
        self.job = self.pool.start(
            run_evaluation,
            ws,
            images,
            labels,
            variants,
            self.backend.currentData() or "ort-cpu",
            name="evaluate",
            on_progress=self._progress,
            on_finished=self._evaluated,
            on_error=self.show_job_error,
            on_cancelled=lambda: self.status.setText("Cancelled; earlier results kept."),
            on_done=self._done,
        )
        self.eval_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.progress.setVisible(True)
        return True

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(message)

    def _evaluated(self, path: Path) -> None:
        self.progress.setValue(1000)
        self.status.setText(f"saved {path.name}")
        self.load_workspace_results(select=path)

    def _done(self) -> None:
        self.job = None
        self.progress.setVisible(False)
        self.eval_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    # showing ---------------------------------------------------------------------------------
    def _choose(self) -> None:
        start = str(self.setting("last_dir", ""))
        path, _ = QFileDialog.getOpenFileName(self, "Results", start, "JSON (*.json)")
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path, remember: bool = True) -> bool:
        """Show a results file: an evaluation (with the workspace's benchmark merged in when
        it has matching rows) or a benchmark alone."""
        path = Path(path)
        try:
            report = read_json(path)
        except UserError as exc:
            self.messages.set("load", str(exc))
            return False
        if remember:
            self.set_setting("last_dir", str(path.parent))
        self.messages.clear("load")
        if "results" in report and "variants" not in report:
            report = bench_as_report(report)
        else:
            bench = path.parent / "bench.json"
            if bench.is_file() and bench != path:
                try:
                    other = read_json(bench)
                except UserError:
                    other = {}  # the evaluation alone is still worth showing
                if same_model(report, other, path.parent):
                    report = with_bench(report, other)
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

    def load(self, report: dict[str, Any]) -> bool:
        """Show an evaluate()-shaped dict."""
        if not isinstance(report, dict) or not report.get("variants"):
            self.messages.set("load", "this file has no per-variant results", "warning")
            return False
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
        metrics = [c for c in columns[3:] if not c.startswith(("latency ", "bench "))]
        keep = self.metric_box.currentText()
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        self.metric_box.addItems(metrics)
        if keep in metrics:
            self.metric_box.setCurrentText(keep)
        self.metric_box.blockSignals(False)
        images = f" on {report['images']} images" if report.get("images") else ""
        labelled = report.get("labelled")
        truth = "" if labelled is None else (" (labelled)" if labelled else " (vs fp32)")
        self.caption.setText(f"{report.get('task', '')}{images}{truth}: {len(rows)} rows")
        self._plot()
        return True

    def _plot(self) -> None:
        for label in self.point_labels:
            self.plot.removeItem(label)
        self.point_labels.clear()
        metric = self.metric_box.currentText()
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
