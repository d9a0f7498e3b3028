"""Model panel: open an .onnx file or checkpoint folder, see and correct what the model expects."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.core.errors import FixableByCopy, UserError
from app.core.frames.postprocess import has_masks
from app.core.model.spec import RESIZE_MODES, ModelSpec
from app.gui.panels.base import Panel, run_panel
from app.gui.panels.copy_offer import CopyOffer, inspect_or_offer
from app.gui.panels.labels_box import LabelsBox
from app.gui.panels.preprocess_finder_box import PreprocessFinder
from app.gui.widgets import blank_spinboxes
from app.gui.workers import Job


def demo_module() -> Any:
    """The demo-model downloader, or None while it is not part of this checkout."""
    try:
        return importlib.import_module("app.core.model.demo")
    except ImportError:
        return None


def fetch_demo(*, progress: Any, cancel: Any) -> Path:
    """Worker side: download (or reuse) the verified demo model; the folder to open."""
    result = demo_module().fetch_demo_model(progress=progress, cancel=cancel)
    path = Path(getattr(result, "path", result))
    return path.parent if path.is_file() else path


class DemoBanner(QFrame):
    """First-run offer, inline and non-modal: fetch the YOLOX-Nano demo, or open your own."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("demo_banner")
        self.setStyleSheet(
            "#demo_banner { background:#e3efff; border:1px solid #a9c4ea; border-radius:4px; }"
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 10, 6)
        self.text = QLabel(
            "<b>New here?</b> Try everything on the official YOLOX-Nano COCO detector "
            "(3.7 MB download, verified) — or open a model of your own with File > Open."
        )
        self.text.setWordWrap(True)
        self.get_btn = QPushButton("Get the YOLOX-Nano demo model")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)
        self.dismiss_btn = QPushButton("Not now")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.progress.setMaximumWidth(260)
        row.addWidget(self.text, 1)
        for w in (self.progress, self.get_btn, self.cancel_btn, self.dismiss_btn):
            row.addWidget(w)


NOTE_FIELDS = {  # words of a guessing note -> the form fields that settle it
    "resize mode": ("resize", "color"),
    "normalis": ("scale", "mean", "std"),
    "mean/std": ("scale", "mean", "std"),
}


def _same(old: Any, new: Any, name: str) -> bool:
    """A field unchanged up to the form's rounding (6 decimals, numbers shown with %g)."""
    a, b = getattr(old, name), getattr(new, name)
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-4, atol=1e-6))


def edited_notes(notes: list[str], old: Any, new: Any) -> list[str]:
    """The spec's notes after the user edited preprocessing `old` -> `new`: a "(guessed)" note
    about a field the user changed now says what the user set, not that it was guessed."""
    changed = {f for f in ("resize", "color", "scale", "mean", "std") if not _same(old, new, f)}
    out = []
    for note in notes:
        fields = next((f for key, f in NOTE_FIELDS.items() if key in note), ())
        if "guessed" not in note or not changed & set(fields):
            out.append(note)
        elif fields[0] == "resize":
            out.append(f"resize mode '{new.resize}', {new.color} (set by you)")
        else:
            mean, std = (", ".join(f"{v:g}" for v in vals) for vals in (new.mean, new.std))
            out.append(f"scale {new.scale:g}, mean {mean}, std {std} (set by you)")
    return out


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
        self.demo_job: Job | None = None
        self.banner = DemoBanner()
        self.banner.get_btn.clicked.connect(self.get_demo)
        self.banner.cancel_btn.clicked.connect(lambda: self.demo_job and self.demo_job.cancel())
        self.banner.dismiss_btn.clicked.connect(self._dismiss_demo)
        self.body.addWidget(self.banner)
        self.body.addLayout(row)
        self.update_banner()

        # offered when the model opens only through a copy (`adapt`): write it and open that
        self.copy_btn = CopyOffer(self)
        self.body.addWidget(self.copy_btn, 0, Qt.AlignmentFlag.AlignLeft)

        self.summary = QLabel("No model open.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(self.summary)

        lower = QHBoxLayout()
        self.body.addLayout(lower, 1)
        lower.addWidget(self._build_form(), 0)
        self.labels_box = LabelsBox(self.pick_file)
        self.labels = self.labels_box.list
        self.labels_box.problem.connect(
            lambda text: self.messages.set("labels", text, "error") if text else None
        )
        lower.addWidget(self.labels_box, 1)
        self.finder = PreprocessFinder(self)  # "Find preprocessing…" and its evidence
        self.body.addWidget(self.finder, 1)
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
        self.numbers = (self.height, self.width, self.scale, self.conf, self.iou)
        blank_spinboxes(self.numbers, True)
        return box

    # first run -------------------------------------------------------------------------------
    def first_run(self) -> bool:
        """No model open, none ever chosen, and the offer not dismissed."""
        return (
            self.state.spec is None
            and not self.settings.recent("models")
            and not self.setting("demo_dismissed", False)
        )

    def update_banner(self) -> None:
        busy = self.demo_job is not None
        self.banner.setVisible(busy or (self.first_run() and demo_module() is not None))

    def _dismiss_demo(self) -> None:
        if self.demo_job is not None:
            self.demo_job.cancel()
        self.set_setting("demo_dismissed", True)
        self.update_banner()

    def get_demo(self) -> bool:
        """Download the demo model in the worker, then open it; progress and cancel inline."""
        if self.demo_job is not None or demo_module() is None:
            return False
        self.messages.clear("demo")
        b = self.banner
        b.progress.setValue(0)
        b.progress.setVisible(True)
        b.get_btn.setEnabled(False)
        b.cancel_btn.setVisible(True)
        self.demo_job = self.pool.start(
            fetch_demo,
            name="demo model",
            on_progress=self._demo_progress,
            on_finished=self._demo_ready,
            on_error=lambda msg, _tb: self.messages.set("demo", msg, "error"),
            on_cancelled=lambda: self.messages.set("demo", "Download cancelled.", "info"),
            on_done=self._demo_done,
        )
        return True

    def _demo_progress(self, fraction: float, message: str) -> None:
        self.banner.progress.setValue(int(fraction * 1000))
        self.banner.progress.setFormat(message or "%p%")

    def _demo_ready(self, folder: Path) -> None:
        self.open_model(str(folder))

    def _demo_done(self) -> None:
        self.demo_job = None
        b = self.banner
        b.progress.setVisible(False)
        b.get_btn.setEnabled(True)
        b.cancel_btn.setVisible(False)
        self.update_banner()

    # opening ---------------------------------------------------------------------------------
    def choose_file(self) -> None:
        start = str(self.setting("last_dir", "") or "")
        path = self.pick_file("Open model", start, "ONNX models (*.onnx)")
        if path:
            self.open_model(path)

    def choose_folder(self) -> None:
        path = self.pick_folder("Open checkpoint folder", str(self.setting("last_dir", "") or ""))
        if path:
            self.open_model(path)

    def open_model(self, path: str) -> None:
        """Inspect the model off the GUI thread (hashing and graph checks take a while)."""
        path = str(path).strip()
        if not path:
            return
        self.path.setText(path)
        self.messages.clear("model")
        self.copy_btn.setVisible(False)
        self.summary.setText(f"Reading {path} …")
        self.set_setting("last_dir", str(Path(path).parent))
        self.pool.start(
            lambda progress, cancel: inspect_or_offer(path),
            name="open model",
            on_finished=lambda spec: self._opened(path, spec),
            on_error=lambda message, _tb: self.show_open_error(message),
        )

    def _opened(self, path: str, spec: ModelSpec | FixableByCopy) -> None:
        if isinstance(spec, FixableByCopy):
            self.show_open_error(str(spec))
            self.copy_btn.offer(path, spec)
            return
        self.model_opened.emit(path)
        try:
            self.state.open_spec(spec)  # the user's corrections (workspace) on top of the guess
        except UserError as exc:
            self.show_open_error(str(exc))

    def show_open_error(self, message: str) -> None:
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
        self.update_banner()
        if not isinstance(spec, ModelSpec):
            return
        self.path.setText(spec.path)
        blank_spinboxes(self.numbers, False)
        self.form_box.setEnabled(True)
        outs = ", ".join(f"{o['name']} {o['shape']}" for o in spec.outputs)
        lines = [
            f"<b>{Path(spec.path).name}</b> — {spec.task}{' with instance masks' * has_masks(spec)}"
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
        for spin in (self.conf, self.iou):  # box thresholds: nothing to set for a classifier
            spin.setEnabled(spec.task == "detection")
        self._fill_labels(spec)

    def _fill_labels(self, spec: ModelSpec) -> None:
        self.messages.clear("labels")
        self.labels_box.show_spec(spec)

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
        notes = edited_notes(spec.notes, spec.preprocess, pre)
        labels = self.labels_box.names()  # renamed or loaded in the Labels box
        self.state.correct(
            dataclasses.replace(spec, preprocess=pre, postprocess=post, notes=notes, labels=labels)
        )
        return True


def main() -> int:
    return run_panel(lambda state: ModelPanel(state))


if __name__ == "__main__":
    raise SystemExit(main())
