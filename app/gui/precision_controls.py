"""The Precision panel's controls: evaluation folder, the automatic search's pool of unlabelled
images, target layout, image count, accepted drop, the Analyse / Auto / Re-run buttons, and room
for the panel's job bar."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.widgets import EvalFolderRow

TARGETS = ("ort-cpu", "tensorrt", "openvino")


class PrecisionControls(QGroupBox):
    """The "Analyse and fix" box. Starting values come from the panel's saved settings (or the
    declared defaults); the panel connects the buttons, reads the fields and adds its job bar."""

    def __init__(
        self,
        images: str,
        labels: str,
        target: str,
        count: int,
        drop: float,
        pool: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Analyse and fix", parent)
        outer = QVBoxLayout(self)
        row = EvalFolderRow(
            self,
            images,
            labels,
            "evaluation images (for re-run and auto; not calibration)",
            "optional: YOLO .txt / COCO .json, or file,class CSV / class subfolders",
        )
        self.images, self.labels = row.images, row.labels
        outer.addLayout(row)
        self.pool = QLineEdit(pool)
        self.pool.setPlaceholderText(
            "optional: more folders or videos for auto (';' between them), no labels needed"
        )
        self.pool.setToolTip(
            "Auto judges agreement with FP32 on the evaluation images plus these (folders, or "
            "videos: every 10th frame), calibration images left out. Every 4th image is held "
            "out and only used to check the result."
        )
        self.pool_btn = QPushButton("Pool…")
        self.pool_btn.setToolTip("Add a folder; cancel it to add a video file")
        pool_row = QHBoxLayout()
        pool_row.addWidget(QLabel("Pool"))
        pool_row.addWidget(self.pool, 1)
        pool_row.addWidget(self.pool_btn)
        outer.addLayout(pool_row)

        row2 = QHBoxLayout()
        self.target = QComboBox()
        for name in TARGETS:
            self.target.addItem(name, name)
        self.target.setCurrentIndex(max(0, self.target.findData(target)))
        self.target.setToolTip(
            "Q/DQ layout of the INT8 graph. Analysis and scoring run on ONNX Runtime CPU, so "
            "latencies for tensorrt and openvino are only indicative."
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
        self.drop.setToolTip(
            "Largest accuracy drop against FP32 on the labelled evaluation images the automatic "
            "search accepts; it also needs agreement with FP32 of 92 (detectors, mAP50-95) or "
            "98% (classifiers, top-1) on all its images"
        )
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
        for w in self.buttons():
            row2.addWidget(w)
        self.row2 = row2
        outer.addLayout(row2)

    def buttons(self) -> list[QPushButton]:
        """The buttons that start a job (disabled while one runs)."""
        return [self.analyse_btn, self.auto_btn, self.rerun_btn]

    def add_job_bar(self, bar: QWidget) -> None:
        """Put the panel's job bar after the buttons."""
        self.row2.addWidget(bar, 1)
