"""Variants panel: FP32/FP16/INT8 graphs per backend with files and sizes; build them in a worker;
which backends this machine cannot run, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
)

from app.backends.base import BackendStatus
from app.core import defaults
from app.core.errors import UserError
from app.core.model.spec import ModelSpec
from app.core.quant import quantize, recipe
from app.core.quant.build import build_variants
from app.core.quant.prepare import preparation_lines
from app.core.quant.silu_choice import silu_form_line
from app.core.quant.speed import speed_line
from app.core.quant.variant_speed import openvino_alternative, prepared_beats_int8
from app.gui.engines_box import EnginesBox
from app.gui.panels.base import BackendStatuses, Panel, fill_backend_combo, run_panel

COLUMNS = ["variant", "precision", "target", "valid", "size", "file"]
PRECISION_BOXES = {"fp16": "FP16", "int8": "INT8", "fp32-prep": "FP32 prepared"}


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class SortItem(QTableWidgetItem):
    """A cell that sorts by the number in its UserRole (sizes by bytes, not by their text)."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)):
            return mine < theirs
        return self.text() < other.text()  # (super().__lt__ would call this override again)


class VariantsPanel(Panel):
    """Lists the workspace's variants and (re)builds them."""

    title = "Variants"
    settings_key = "variants"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        row = QHBoxLayout()
        self.precisions = {}
        for name, label in PRECISION_BOXES.items():
            box = QCheckBox(label)
            box.setChecked(name in defaults.QUANTIZE_PRECISIONS)
            self.precisions[name] = box
            row.addWidget(box)
        self.precisions["fp32-prep"].setToolTip(
            "fp32-prep: the FP32 model with a Focus stem's slices folded into its convolution "
            "(YOLOX, YOLOv5 before 6.0): same outputs, faster on ONNX Runtime CPU. Not made "
            "for a model without one."
        )
        # built beside INT8, never instead of it: it helped one model and hurt another
        self.equalized = QCheckBox("+ equalised INT8")
        self.equalized.setToolTip(
            "Also build int8-eq (-trt, -ov): INT8 with uneven conv inputs equalised "
            "(SmoothQuant-style). It brought YOLOX-Nano's TensorRT layout closer to FP32 and a "
            "ReLU hand detector's further: compare both in Results."
        )
        row.addWidget(self.equalized)
        self.target = QComboBox()
        self.target.addItem(defaults.BACKEND, defaults.BACKEND)
        row.addWidget(QLabel("for backend"))
        row.addWidget(self.target)
        row.addStretch(1)
        self.build_btn = QPushButton("Build / rebuild")
        self.build_btn.clicked.connect(self.build)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        for w in (self.build_btn, refresh):
            row.addWidget(w)
        self.body.addLayout(row)
        self.body.addWidget(self.make_job_bar("", [self.build_btn]))
        # Stale variants (built from an older calibration or preprocessing) are refused by Live,
        # Compare and Results until rebuilt; this is the user's explicit choice to use them.
        self.use_stale = QCheckBox("Use stale variants (built from an older calibration)")
        self.use_stale.toggled.connect(self._use_stale)
        self.body.addWidget(self.use_stale)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(
            len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch
        )
        # the variants' own order (fp32, fp32-prep, fp16, int8) until a column is clicked
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().setVisible(False)
        self.body.addWidget(self.table, 2)
        self.engines = EnginesBox(self)
        self.body.addWidget(self.engines, 2)
        self.body.addWidget(QLabel("Backends on this machine"))
        self.backends = QTreeWidget()
        self.backends.setHeaderLabels(["backend", "available", "why not"])
        self.backends.setColumnWidth(0, 130)
        self.backends.setColumnWidth(1, 80)
        self.body.addWidget(self.backends, 1)
        self.statuses = BackendStatuses(self.pool)
        self.statuses.ready.connect(self._show_statuses)
        self.statuses.load()
        self.state.variants_changed.connect(self.refresh)
        self.refresh()

    def _show_statuses(self, statuses: list[BackendStatus]) -> None:
        fill_backend_combo(self.target, statuses)
        self.backends.clear()
        for s in statuses:
            QTreeWidgetItem(self.backends, [s.name, "yes" if s.available else "no", s.reason])

    def on_spec_changed(self, spec: object) -> None:
        self.use_stale.setChecked(self.state.allow_stale)  # reset for another model
        self.refresh()

    def _use_stale(self, on: bool) -> None:
        self.state.allow_stale = on

    def refresh(self) -> None:
        """Re-read the workspace's variants (cheap: metadata files and sizes)."""
        self.table.setSortingEnabled(False)
        self.table.setRowCount(0)
        if not isinstance(self.state.spec, ModelSpec):
            return
        spec = self.state.spec
        rows: list[dict[str, Any]] = [
            {
                "name": "fp32",
                "precision": "fp32",
                "target": "any",
                "valid": True,
                "bytes": Path(spec.path).stat().st_size if Path(spec.path).exists() else 0,
                "file": spec.path,
            }
        ]
        try:
            ws = self.state.workspace()
            for meta in self.state.variant_metas():
                if meta.get("name") == "fp32":
                    continue
                meta.setdefault("file", str(ws.variant_path(meta["name"])))
                rows.append(meta)
        except UserError as exc:
            self.messages.set("workspace", str(exc))
        for meta in rows:
            r = self.table.rowCount()
            self.table.insertRow(r)
            values = [
                meta.get("name", ""),
                meta.get("precision", meta.get("name", "")),
                meta.get("target", meta.get("backend", "")),
                "damaged" if not meta.get("valid") else "stale" if meta.get("stale") else "yes",
                human_size(int(meta.get("bytes", 0))),
                str(meta.get("file", "")),
            ]
            for c, value in enumerate(values):
                item = SortItem(str(value))
                if c == 4:
                    item.setData(Qt.ItemDataRole.UserRole, int(meta.get("bytes", 0)))
                if c == 3 and meta.get("stale"):
                    item.setToolTip(f"{meta['stale']}: rebuild it (Build / rebuild)")
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.setSortingEnabled(True)
        stale = [f"'{m['name']}' {m['stale']}" for m in rows if m.get("stale")]
        if stale:
            self.messages.set(
                "stale",
                f"stale: {'; '.join(stale)}. Live, Compare and Results refuse it until you "
                "rebuild it (Build / rebuild) or tick 'Use stale variants'",
                "warning",
            )
        else:
            self.messages.clear("stale")

    def build(self) -> bool:
        """Build the ticked precisions in the worker; False with an inline message when it
        cannot start."""
        if self.job is not None:
            return False
        precisions = tuple(n for n, box in self.precisions.items() if box.isChecked())
        try:
            ws = self.state.workspace()
            if not precisions:
                raise UserError("tick FP16, INT8 or FP32 prepared to build")
        except UserError as exc:
            self.messages.set("build", str(exc))
            return False
        self.messages.clear("build")
        backend = self.target.currentData() or defaults.BACKEND
        target = quantize.TARGET_OF_BACKEND.get(backend, backend)
        return self.run_job(
            build_variants,  # as the CLI: INT8 timed against FP32 on this CPU, SiLU form chosen
            ws,
            precisions=precisions,
            target=target,
            equalized=self.equalized.isChecked(),
            name="quantize",
            on_finished=self._built,
            cancelled="Cancelled; earlier variants kept.",
        )

    def _built(self, metas: list[dict[str, Any]]) -> None:
        made = [str(m.get("name")) for m in metas if not m.get("skipped") and not m.get("reused")]
        reused = [str(m.get("name")) for m in metas if not m.get("skipped") and m.get("reused")]
        said = ([f"built {', '.join(made)}"] if made else []) + (
            [f"reused {', '.join(reused)} (up to date)"] if reused else []
        )
        self.status.setText("; ".join(said) if said else "nothing to build")
        prepared = preparation_lines(metas)
        if prepared:
            self.messages.set("prepared", "; ".join(prepared), "info")
        kept = [line for line in map(recipe.float_summary, metas) if line]
        if kept:
            self.messages.set("float", "; ".join(kept), "info")
        timed = [
            ". ".join(filter(None, (speed_line(m), silu_form_line(m))))
            for m in metas
            if m.get("speed")
        ]
        verdict = prepared_beats_int8(metas)  # the exact variant is faster than INT8 here
        if verdict:
            timed.append(verdict)
        hint = openvino_alternative(
            metas, [str(v["name"]) for v in self.state.workspace().variants()]
        )
        if hint:
            timed.append(f"{hint} (INT8 for backend openvino-cpu, Build / rebuild; then Results)")
        if timed:  # a warning when INT8 is not faster here: the user may prefer FP32
            slower = bool(verdict) or any(
                not m["speed"].get("faster") for m in metas if m.get("speed")
            )
            self.messages.set("speed", "\n".join(timed), "warning" if slower else "info")
        for m in metas:
            if m.get("skipped"):
                self.messages.set("build", f"{m.get('name')}: not made: {m['skipped']}", "info")
        self.state.variants_changed.emit()


def main() -> int:
    return run_panel(lambda state: VariantsPanel(state))


if __name__ == "__main__":
    raise SystemExit(main())
