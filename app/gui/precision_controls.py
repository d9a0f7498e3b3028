"""The Precision panel's controls: evaluation folder, target layout, image count, accepted drop,
the Analyse / Auto / Re-run / Cancel buttons, and the job's progress and status."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.widgets import EvalFolderRow

TARGETS = ("ort-cpu", "tensorrt")


class PrecisionControls(QGroupBox):
    """The "Analyse and fix" box. Starting values come from the panel's saved settings; the
    panel connects the buttons and reads the fields."""

    def __init__(
        self,
        images: str,
        labels: str,
        target: str,
        count: int,
        drop: float,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Analyse and fix", parent)
        outer = QVBoxLayout(self)
        row = EvalFolderRow(
            self,
            images,
            labels,
            "evaluation images (for re-run and auto; not calibration)",
            "optional: YOLO .txt folder or COCO .json",
        )
        self.images, self.labels = row.images, row.labels
        outer.addLayout(row)

        row2 = QHBoxLayout()
        self.target = QComboBox()
        for name in TARGETS:
            self.target.addItem(name, name)
        self.target.setCurrentIndex(max(0, self.target.findData(target)))
        self.target.setToolTip(
            "Q/DQ layout of the INT8 graph. Analysis and scoring run on ONNX Runtime CPU, so "
            "latencies for tensorrt are only indicative."
        )
        self.count = QSpinBox()
        self.count.setRange(1, 64)
        self.count.setValue(count)
        self.count.setToolTip("Calibration images the analysis runs (more: steadier, slower)")
        self.drop = QDoubleSpinBox()
        self.drop.setRange(0.0, 50.0)
        self.drop.setSingleStep(0.5)
        self.drop.setDecimals(1)
        self.drop.setValue(drop)
        self.drop.setSuffix(" pts")
        self.drop.setToolTip("Largest accuracy drop against FP32 the automatic search accepts")
        for label, w in (("Target", self.target), ("Images", self.count), ("Max drop", self.drop)):
            row2.addWidget(QLabel(label))
            row2.addWidget(w)
        row2.addSpacing(8)
        self.analyse_btn = QPushButton("Analyse")
        self.analyse_btn.setToolTip("Per-layer error of the all-INT8 graph on calibration images")
        self.auto_btn = QPushButton("Auto mixed precision")
        self.auto_btn.setToolTip("Keep the fewest worst blocks float that meet the max drop")
        self.rerun_btn = QPushButton("Re-run")
        self.rerun_btn.setToolTip("Build int8-custom with the ticked blocks float and score it")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        for w in (self.analyse_btn, self.auto_btn, self.rerun_btn, self.cancel_btn):
            row2.addWidget(w)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setMinimumWidth(120)
        row2.addWidget(self.progress)
        row2.addWidget(self.status, 1)
        outer.addLayout(row2)

    def set_running(self, running: bool) -> None:
        """Buttons and progress bar for a job starting (True) or ended (False)."""
        for w in (self.analyse_btn, self.auto_btn, self.rerun_btn):
            w.setEnabled(not running)
        self.cancel_btn.setEnabled(running)
        self.progress.setVisible(running)
        if running:
            self.progress.setValue(0)
