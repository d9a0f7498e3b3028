"""Calibration panel: pick an image folder and sample, watch progress, cancel, see skipped files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
)

from app.core import defaults
from app.core.errors import UserError
from app.core.quant import calibration as calib
from app.gui.panels.base import Panel, run_panel
from app.gui.stream import to_qimage

MAX_THUMBS = 48
THUMB = 72


@dataclass
class Thumbnails:
    """What the preview shows: (path, QImage) of the first files, and the files among them that
    could not be decoded as a thumbnail."""

    images: list[tuple[str, Any]] = field(default_factory=list)
    not_shown: list[str] = field(default_factory=list)
    chosen: int = 0  # files in the sample (only the first MAX_THUMBS are previewed)


def load_thumbnails(files: list[Path], *, progress: Any, cancel: Any) -> Thumbnails:
    """Small QImages of the first files (worker side; decoding at reduced size is cheap). A file
    that cannot be previewed is listed, not fatal: the rest are still shown."""
    out = Thumbnails(chosen=len(files))
    for i, path in enumerate(files[:MAX_THUMBS]):
        cancel.check()
        try:
            # a reduced decode of an image under 4 px a side asserts in cv2.resize (3x2 PNG)
            image = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_4)
            if image is None or image.size == 0:
                raise ValueError("not decodable")
            out.images.append((str(path), to_qimage(image, (THUMB * 2, THUMB * 2))))
        except (cv2.error, ValueError):
            out.not_shown.append(str(path))
        progress((i + 1) / min(len(files), MAX_THUMBS), "thumbnails")
    return out


class CalibrationPanel(Panel):
    """Calibrate the current model on a sample of the user's images."""

    title = "Calibration"
    settings_key = "calibration"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.result: Any = None
        row = QHBoxLayout()
        self.folder = QLineEdit(str(self.setting("folder", "")))
        self.folder.setPlaceholderText("folder of images like the ones the model will see")
        browse = QPushButton("Folder…")
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("Images"))
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.body.addLayout(row)

        opts = QHBoxLayout()
        self.count = QSpinBox()
        self.count.setRange(0, 100000)
        self.count.setSpecialValueText("all")
        self.count.setValue(int(self.setting("count", defaults.CALIBRATION_COUNT)))
        self.fraction = QDoubleSpinBox()
        self.fraction.setRange(0.0, 1.0)
        self.fraction.setSingleStep(0.05)
        self.fraction.setSpecialValueText("–")
        self.fraction.setToolTip("Use this fraction of the folder instead of a count")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(defaults.CALIBRATION_SEED)
        self.method = QComboBox()
        self.method.addItems(list(calib.METHODS))
        self.method.setCurrentText(str(self.setting("method", defaults.CALIBRATION_METHOD)))
        self.percentile = QDoubleSpinBox()
        # (0, 100]: the lowest step above zero stands in for the open end
        self.percentile.setDecimals(4)
        self.percentile.setRange(0.0001, 100.0)
        self.percentile.setSingleStep(0.001)
        self.percentile.setValue(float(self.setting("percentile", defaults.PERCENTILE)))
        self.percentile.setToolTip(
            "Percentile method only: the share of |values| each range keeps (above 0, at most "
            "100); the rest are clipped as outliers"
        )
        self.method.currentTextChanged.connect(self._method_changed)
        self._method_changed(self.method.currentText())
        for label, w in (
            ("Count", self.count),
            ("or fraction", self.fraction),
            ("Seed", self.seed),
            ("Method", self.method),
            ("Percentile", self.percentile),
        ):
            opts.addWidget(QLabel(label))
            opts.addWidget(w)
        opts.addStretch(1)
        self.preview_btn = QPushButton("Preview sample")
        self.preview_btn.clicked.connect(self.preview)
        self.run_btn = QPushButton("Calibrate")
        self.run_btn.clicked.connect(self.start)
        for w in (self.preview_btn, self.run_btn):
            opts.addWidget(w)
        self.body.addLayout(opts)

        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setFlow(QListWidget.Flow.LeftToRight)
        self.thumbs.setWrapping(True)
        self.thumbs.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.thumbs.setIconSize(QSize(THUMB, THUMB))
        self.thumbs.setGridSize(QSize(THUMB + 10, THUMB + 10))
        self.thumbs.setMinimumHeight(THUMB + 24)
        self.thumbs_caption = QLabel("")  # how many of the sample the preview shows
        self.body.addWidget(self.thumbs_caption)
        self.body.addWidget(self.thumbs, 3)

        self.body.addWidget(self.make_job_bar("Not calibrated yet.", [self.run_btn]))
        self.body.addWidget(QLabel("Skipped files"))
        self.skipped = QTreeWidget()
        self.skipped.setHeaderLabels(["file", "reason"])
        self.skipped.setColumnWidth(0, 380)
        self.skipped.setMinimumHeight(80)
        self.body.addWidget(self.skipped, 1)

    def _method_changed(self, method: str) -> None:
        self.percentile.setEnabled(method == "percentile")

    def _browse(self) -> None:
        path = self.pick_folder("Calibration images", self.folder.text())
        if path:
            self.folder.setText(path)

    def _sample_args(self) -> dict[str, Any]:
        fraction = self.fraction.value() or None
        count = None if fraction else (self.count.value() or None)
        return {"count": count, "fraction": fraction, "seed": self.seed.value()}

    def preview(self) -> None:
        """Show thumbnails of the images the current settings would choose."""
        folder = self.folder.text().strip()
        try:
            files, warnings = calib.select_images(folder, **self._sample_args())
        except UserError as exc:
            self.messages.set("folder", str(exc))
            return
        self.messages.clear("folder")
        for i, text in enumerate(warnings):
            self.messages.set(f"warn{i}", text, "info")
        self.status.setText(f"{len(files)} images chosen")
        self.thumbs.clear()
        self.thumbs_caption.setText(f"loading a preview of {len(files)} images…")
        self.pool.start(load_thumbnails, files, name="thumbnails", on_finished=self._show_thumbs)

    def _show_thumbs(self, thumbs: Thumbnails) -> None:
        self.thumbs.clear()
        for path, image in thumbs.images:
            item = QListWidgetItem(QIcon(QPixmap.fromImage(image)), "")
            item.setToolTip(path)
            self.thumbs.addItem(item)
        shown, chosen = len(thumbs.images), thumbs.chosen
        self.thumbs_caption.setText(
            f"showing all {chosen} images of the sample"
            if shown == chosen
            else f"showing {shown} of {chosen} images of the sample (calibration reads all "
            f"{chosen}; any it cannot read are listed when it is done)"
        )
        if thumbs.not_shown:
            names = ", ".join(Path(p).name for p in thumbs.not_shown[:3])
            more = "…" if len(thumbs.not_shown) > 3 else ""
            self.messages.set(
                "thumbs",
                f"{len(thumbs.not_shown)} of {min(thumbs.chosen, MAX_THUMBS)} thumbnails not "
                f"shown (too small or unreadable for a preview: {names}{more})",
                "info",
            )
        else:
            self.messages.clear("thumbs")

    def start(self) -> bool:
        """Run calibration in a worker; False with an inline message when it cannot start."""
        if self.job is not None:
            return False
        self.messages.clear()
        folder = self.folder.text().strip()
        try:
            ws = self.state.workspace()
            calib.select_images(folder, **self._sample_args())  # quick check: inline errors now
        except UserError as exc:
            self.messages.set("folder", str(exc))
            return False
        self.set_setting("folder", folder)
        self.set_setting("count", self.count.value())
        self.set_setting("method", self.method.currentText())
        self.set_setting("percentile", self.percentile.value())
        self.preview()
        self.skipped.clear()
        return self.run_job(
            calib.calibrate,
            ws,
            folder,
            method=self.method.currentText(),
            percentile=self.percentile.value(),  # calibrate() rejects values outside (0, 100]
            name="calibration",
            on_finished=self._finished,
            cancelled="Cancelled; nothing was kept.",
            **self._sample_args(),
        )

    def _finished(self, result: Any) -> None:
        self.result = result
        how = "reused" if result.reused else f"{result.images_per_s:.1f} img/s"
        skipped = f" ({len(result.skipped)} skipped, below)" if result.skipped else ""
        self.status.setText(
            f"Calibrated ({result.method}) on {len(result.images_used)} images{skipped}, "
            f"{result.seconds:.1f} s, {how}; key {result.key}"
        )
        for s in result.skipped:
            QTreeWidgetItem(self.skipped, [s.source, s.reason])
        for i, text in enumerate(result.warnings):
            self.messages.set(f"warn{i}", text, "info")
        self.state.variants_changed.emit()


def main() -> int:
    return run_panel(lambda state: CalibrationPanel(state))


if __name__ == "__main__":
    raise SystemExit(main())
