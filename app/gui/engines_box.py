"""The Variants panel's "Engines" group: build TensorRT engines per variant in a worker (the
panel's job bar shows TensorRT's phases, its Cancel stops the build) and list the built ones
with their records. Where TensorRT cannot run, the controls stay visible but disabled, and the
group says why and how to get it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.backends.base import BackendStatus
from app.backends.tensorrt.engines import VARIANTS, EngineOptions
from app.backends.tensorrt.workspace_engines import (
    DEFAULT_VARIANTS,
    ENGINE_KINDS,
    build_engines,
    build_with_provider_engines,
    list_engines,
    unavailable_sentence,
)
from app.core.errors import UserError
from app.gui.messages import STYLES
from app.gui.panels.base import Panel

COLUMNS = ["engine", "variant", "precision", "route", "TensorRT", "GPU", "shapes", "build time",
           "size", "state", "file"]  # fmt: skip
CHECKING = "checking whether TensorRT can build engines here…"


def probe_statuses(trt: Any = None, cudart: Any = None) -> dict[str, BackendStatus]:
    """The status of each engine kind (imports TensorRT, asks CUDA for a GPU: off the GUI
    thread). trt / cudart: modules to use instead of the installed ones (tests)."""
    from app.backends.registry import status_of
    from app.backends.tensorrt.status import tensorrt_status

    native = (
        tensorrt_status(load_tensorrt=lambda: trt, load_cudart=lambda: cudart)
        if trt is not None
        else tensorrt_status()
    )
    return {"tensorrt": native, "ort-tensorrt": status_of("ort-tensorrt")}


def _size(n: float) -> str:
    """Bytes as the CLI's build table writes them (MB), small files in B or KB."""
    if n >= 1e5:
        return f"{n / 1e6:.2f} MB"
    return f"{n / 1e3:.1f} KB" if n >= 1e3 else f"{n:.0f} B"


class EnginesBox(QGroupBox):
    """Engine kind, the variants to build, Build (on the panel's job bar), the built engines."""

    probed = Signal(object)  # (probe number, {kind: BackendStatus}) from the worker that probed

    def __init__(self, panel: Panel, *, trt: Any = None, cudart: Any = None) -> None:
        super().__init__("Engines", panel)
        self.panel = panel
        self.modules = (trt, cudart)
        self.statuses: dict[str, BackendStatus] = {}
        self._probe_id = 0
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.kind = QComboBox()
        for kind in ENGINE_KINDS:
            self.kind.addItem(kind, kind)
        self.kind.setToolTip(
            "tensorrt: native TensorRT engines with INT8 Studio's records; ort-tensorrt: ONNX "
            "Runtime's TensorRT provider and its engine cache in the workspace"
        )
        row.addWidget(QLabel("Engine"))
        row.addWidget(self.kind)
        # The controls a missing TensorRT disables live in one widget: the panel re-enables its
        # job buttons after every job, and a child of a disabled widget stays disabled.
        self.controls = QWidget()
        inner = QHBoxLayout(self.controls)
        inner.setContentsMargins(0, 0, 0, 0)
        self.variant_boxes: dict[str, QCheckBox] = {}
        for name in VARIANTS:
            box = QCheckBox(name.upper())
            box.setChecked(name in DEFAULT_VARIANTS)
            self.variant_boxes[name] = box
            inner.addWidget(box)
        inner.addStretch(1)
        self.build_btn = QPushButton("Build engines")
        self.build_btn.clicked.connect(self.build)
        inner.addWidget(self.build_btn)
        row.addWidget(self.controls, 1)
        layout.addLayout(row)
        self.reason = QLabel(CHECKING)
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.reason)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(
            len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch
        )
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(90)
        layout.addWidget(self.table, 1)
        panel.job_buttons.append(self.build_btn)
        self.kind.currentIndexChanged.connect(self._show_availability)
        self.probed.connect(self._on_probed)
        panel.state.variants_changed.connect(self.refresh)
        panel.state.spec_changed.connect(self.refresh)
        self._show_availability()
        self.probe()
        self.refresh()

    # availability ----------------------------------------------------------------------------
    def use_modules(self, trt: Any, cudart: Any) -> None:
        """Build with these `tensorrt` / `cuda.bindings.runtime` modules (the recording
        stand-ins in tests) and probe again."""
        self.modules = (trt, cudart)
        self.probe()

    def probe(self) -> None:
        """Ask, off the GUI thread, which engine kinds can be built here."""
        self.statuses = {}
        self._show_availability()
        trt, cudart = self.modules
        self._probe_id += 1
        probe_id = self._probe_id
        self.panel.pool.start(
            lambda progress, cancel: (probe_id, probe_statuses(trt, cudart)),
            name="engine status",
            on_finished=self.probed,  # signal to signal: dropped if this box is gone
        )

    def _on_probed(self, answer: tuple[int, dict[str, BackendStatus]]) -> None:
        probe_id, statuses = answer
        if probe_id != self._probe_id:  # an earlier probe, of modules no longer in use
            return
        self.statuses = dict(statuses)
        self._show_availability()

    def unavailable(self) -> str:
        """Why the chosen kind cannot be built here and how to get it; "" when it can."""
        kind = self.kind.currentData()
        status = self.statuses.get(kind)
        if status is None:
            return CHECKING
        return "" if status.available else unavailable_sentence(kind, status.reason)

    def _show_availability(self) -> None:
        why = self.unavailable()
        self.controls.setEnabled(not why)
        self.build_btn.setToolTip(why or "build (or reuse) the ticked variants' engines")
        self.reason.setText(why)
        self.reason.setVisible(bool(why))
        self._show_table()
        level = "info" if why == CHECKING else "warning"
        self.reason.setStyleSheet(STYLES[level] + "padding:4px; border-radius:3px;")

    # building --------------------------------------------------------------------------------
    def build(self) -> bool:
        """Build the ticked variants' engines in the worker; False, with an inline message,
        when it cannot start."""
        kind = self.kind.currentData()
        variants = [name for name, box in self.variant_boxes.items() if box.isChecked()]
        try:
            if why := self.unavailable():
                raise UserError(why)
            if self.panel.job is not None:
                raise UserError("another job of this panel is running; wait for it or cancel it")
            ws = self.panel.state.workspace()
            if not variants:
                raise UserError("tick FP32, FP16 and/or INT8 to build their engines")
        except UserError as exc:
            self.panel.messages.set("engines", str(exc))
            return False
        self.panel.messages.clear("engines")
        trt, cudart = self.modules
        extra = {"trt": trt, "cudart": cudart} if kind == "tensorrt" else {}
        return self.panel.run_job(
            build_engines if kind == "tensorrt" else build_with_provider_engines,
            ws,
            variants,
            EngineOptions(),
            name=f"build {kind} engines",
            on_finished=self._built,
            cancelled="Cancelled; the engine being built was not kept.",
            **extra,
        )

    def _built(self, result: dict[str, Any]) -> None:
        done = ", ".join(f"{e['variant']} {e['state']}" for e in result["engines"])
        where = f" (TensorRT {result['trt_version']} on {result['gpu']})" if "gpu" in result else ""
        self.panel.status.setText(f"engines: {done}{where}")
        self.panel.state.variants_changed.emit()  # engines are variants on `tensorrt` too

    # listing ---------------------------------------------------------------------------------
    def refresh(self, *_: object) -> None:
        """Re-read the workspace's engines and their records (cheap: nothing is hashed)."""
        self.table.setRowCount(0)
        if self.panel.state.spec is None:
            return
        try:
            entries = list_engines(self.panel.state.workspace())
        except UserError as exc:
            self.panel.messages.set("engines", str(exc))
            return
        for entry in entries:
            r = self.table.rowCount()
            self.table.insertRow(r)
            seconds = float(entry.get("build_seconds") or 0.0)
            values = [
                entry["kind"],
                entry["variant"],
                entry.get("precision", ""),
                entry.get("route", ""),
                entry.get("trt_version", ""),
                entry.get("gpu", ""),
                entry.get("shapes", ""),
                f"{seconds:.1f} s" if seconds else "",
                _size(float(entry.get("bytes", 0))),
                "usable" if entry["ok"] else entry["problem"],
                entry["engine"],
            ]
            for c, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                item.setToolTip(str(value))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self._show_table()

    def _show_table(self) -> None:
        """No engines and none can be built here: no empty table squeezing the box below."""
        self.table.setVisible(self.table.rowCount() > 0 or not self.unavailable())

    def rows(self) -> list[dict[str, str]]:
        """The table as the user reads it, one dict per engine (column -> text)."""
        return [
            {COLUMNS[c]: self.table.item(r, c).text() for c in range(len(COLUMNS))}
            for r in range(self.table.rowCount())
        ]
