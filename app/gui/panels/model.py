"""Model panel: open an .onnx file or checkpoint folder, see and correct what the model expects."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.core.errors import UserError
from app.core.modelspec import RESIZE_MODES, ModelSpec, inspect_model
from app.gui.panels.base import Panel, run_panel


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError as exc:
        raise UserError(f"'{text}': give three numbers, e.g. 0.485, 0.456, 0.406") from exc
    if len(values) == 1:
        values *= 3
    return values


class ModelPanel(Panel):
    """Spec view with editable preprocessing and thresholds; drop a model file or folder here."""

    title = "Model"
    settings_key = "model"
    model_opened = Signal(str)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setAcceptDrops(True)
        row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText("an .onnx file or a checkpoint folder (or drop one here)")
        self.path.returnPressed.connect(lambda: self.open_model(self.path.text()))
        open_file = QPushButton("Open model…")
        open_file.clicked.connect(self.choose_file)
        open_dir = QPushButton("Open folder…")
        open_dir.clicked.connect(self.choose_folder)
        row.addWidget(self.path, 1)
        row.addWidget(open_file)
        row.addWidget(open_dir)
        self.body.addLayout(row)

        self.summary = QLabel("No model open.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(self.summary)

        lower = QHBoxLayout()
        self.body.addLayout(lower, 1)
        lower.addWidget(self._build_form(), 0)
        labels_box = QGroupBox("Labels")
        labels_layout = QHBoxLayout(labels_box)
        self.labels = QListWidget()
        self.labels.setViewMode(QListWidget.ViewMode.ListMode)
        labels_layout.addWidget(self.labels)
        lower.addWidget(labels_box, 1)
        if self.state.spec is not None:
            self.on_spec_changed(self.state.spec)

    def _build_form(self) -> QWidget:
        box = QGroupBox("Preprocessing and thresholds")
        form = QFormLayout(box)
        self.resize_mode = QComboBox()
        self.resize_mode.addItems(RESIZE_MODES)
        self.height = QSpinBox()
        self.width = QSpinBox()
        for spin in (self.height, self.width):
            spin.setRange(8, 8192)
        size_row = QHBoxLayout()
        size_row.addWidget(self.height)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.width)
        self.color = QComboBox()
        self.color.addItems(["BGR", "RGB"])
        self.scale = QDoubleSpinBox()
        self.scale.setDecimals(6)
        self.scale.setRange(1e-6, 1000.0)
        self.mean = QLineEdit()
        self.std = QLineEdit()
        self.conf = QDoubleSpinBox()
        self.iou = QDoubleSpinBox()
        for spin in (self.conf, self.iou):
            spin.setRange(0.01, 0.99)
            spin.setSingleStep(0.05)
        self.apply_btn = QPushButton("Apply")
        self.apply_btn.clicked.connect(self.apply_edits)
        form.addRow("Resize", self.resize_mode)
        form.addRow("Size (H × W)", size_row)
        form.addRow("Colour order", self.color)
        form.addRow("Scale", self.scale)
        form.addRow("Mean", self.mean)
        form.addRow("Std", self.std)
        form.addRow("Confidence", self.conf)
        form.addRow("NMS IoU", self.iou)
        form.addRow(self.apply_btn)
        box.setEnabled(False)
        self.form_box = box
        return box

    # opening ---------------------------------------------------------------------------------
    def choose_file(self) -> None:
        start = str(self.setting("last_dir", ""))
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, "ONNX models (*.onnx)")
        if path:
            self.open_model(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open checkpoint folder")
        if path:
            self.open_model(path)

    def open_model(self, path: str) -> None:
        """Inspect the model off the GUI thread (hashing and graph checks take a while)."""
        path = str(path).strip()
        if not path:
            return
        self.path.setText(path)
        self.messages.clear("model")
        self.summary.setText(f"Reading {path} …")
        self.set_setting("last_dir", str(Path(path).parent))
        self.pool.start(
            lambda progress, cancel: inspect_model(path),
            name="open model",
            on_finished=lambda spec: self._opened(path, spec),
            on_error=self._open_failed,
        )

    def _opened(self, path: str, spec: ModelSpec) -> None:
        self.model_opened.emit(path)
        self.state.set_spec(spec)

    def _open_failed(self, message: str, _tb: str) -> None:
        self.messages.set("model", message, "error")
        self.summary.setText("No model open.")

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls:
            self.open_model(urls[0].toLocalFile())

    # showing and editing ---------------------------------------------------------------------
    def on_spec_changed(self, spec: object) -> None:
        if not isinstance(spec, ModelSpec):
            return
        self.path.setText(spec.path)
        self.form_box.setEnabled(True)
        outs = ", ".join(f"{o['name']} {o['shape']}" for o in spec.outputs)
        lines = [
            f"<b>{Path(spec.path).name}</b> — {spec.task}"
            + (f" (preset {spec.preset})" if spec.preset else ""),
            f"input <tt>{spec.input_name}</tt> {spec.input_shape} "
            f"{spec.preprocess.layout}{', dynamic size' if spec.dynamic_size else ''}",
            f"outputs {outs}; decoder {spec.postprocess.decoder}",
        ]
        lines += [f"<i>{note}</i>" for note in spec.notes]
        self.summary.setText("<br>".join(lines))
        for i, problem in enumerate(spec.problems):
            self.messages.set(f"problem{i}", problem, "warning")
        pre, post = spec.preprocess, spec.postprocess
        self.resize_mode.setCurrentText(pre.resize)
        self.height.setValue(int(pre.size[0]))
        self.width.setValue(int(pre.size[1]))
        self.color.setCurrentText(pre.color)
        self.scale.setValue(float(pre.scale))
        self.mean.setText(", ".join(f"{v:g}" for v in pre.mean))
        self.std.setText(", ".join(f"{v:g}" for v in pre.std))
        self.conf.setValue(float(post.conf))
        self.iou.setValue(float(post.iou))
        self._fill_labels(spec)

    def _fill_labels(self, spec: ModelSpec) -> None:
        self.labels.clear()
        for i, name in enumerate(spec.labels):
            b, g, r = spec.color(i)
            swatch = QPixmap(14, 14)
            swatch.fill(QColor(r, g, b))
            QListWidgetItem(QIcon(swatch), f"{i}: {name}", self.labels)

    def apply_edits(self) -> bool:
        """Validate the edited fields into a new spec; inline message when they are invalid."""
        spec = self.state.spec
        if spec is None:
            return False
        try:
            pre = dataclasses.replace(
                spec.preprocess,
                resize=self.resize_mode.currentText(),
                size=[self.height.value(), self.width.value()],
                color=self.color.currentText(),
                scale=self.scale.value(),
                mean=_floats(self.mean.text()),
                std=_floats(self.std.text()),
            )
            pre.validate()
        except UserError as exc:
            self.messages.set("preprocess", str(exc), "error")
            return False
        self.messages.clear("preprocess")
        post = dataclasses.replace(spec.postprocess, conf=self.conf.value(), iou=self.iou.value())
        self.state.set_spec(dataclasses.replace(spec, preprocess=pre, postprocess=post))
        return True


def main() -> int:
    return run_panel(lambda state: ModelPanel(state))


if __name__ == "__main__":
    raise SystemExit(main())
