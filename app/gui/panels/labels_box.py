"""The Model tab's class names: shown with their colours, edited in place, loaded from a file."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from app.core.errors import UserError
from app.core.model.sidecars import read_class_names
from app.core.model.spec import ModelSpec

NAME_ROLE = Qt.ItemDataRole.UserRole


class LabelsBox(QGroupBox):
    """Names by class id; double-click one to rename it, or load a whole list (Apply keeps it).

    A loaded list whose length is not the model's class count is refused (`problem`): names
    for another model would label every box wrong.
    """

    problem = Signal(str)  # why a loaded file was not used ("" when it was)

    def __init__(self, pick_file: Any, parent: Any = None) -> None:
        super().__init__("Labels", parent)
        self.pick_file = pick_file  # the panel's file dialog (tests answer it)
        outer = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.ViewMode.ListMode)
        # Columns that fill the width: all 80 COCO names visible without scrolling.
        self.list.setFlow(QListWidget.Flow.TopToBottom)
        self.list.setWrapping(True)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        # Not uniform: Qt then sizes every item like the LAST one, and a short last label
        # cut the others ("0: notp…" beside "1: person"); each column now fits its widest.
        self.list.setUniformItemSizes(False)
        self.list.setSpacing(1)
        self.list.itemChanged.connect(self._renamed)
        outer.addWidget(self.list)
        row = QHBoxLayout()
        self.load_btn = QPushButton("Load labels…")
        self.load_btn.clicked.connect(self.choose_file)
        row.addWidget(self.load_btn)
        row.addStretch(1)
        outer.addLayout(row)
        self._spec: ModelSpec | None = None

    def show_spec(self, spec: ModelSpec) -> None:
        self._spec = spec
        self.fill(spec.labels)

    def fill(self, names: list[str]) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for i, name in enumerate(names):
            b, g, r = self._spec.color(i) if self._spec else (128, 128, 128)
            swatch = QPixmap(14, 14)
            swatch.fill(QColor(r, g, b))
            item = QListWidgetItem(QIcon(swatch), f"{i}: {name}", self.list)
            item.setData(NAME_ROLE, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self.list.blockSignals(False)

    def _renamed(self, item: QListWidgetItem) -> None:
        """Keep the 'id: ' prefix; what follows it is the new name."""
        row = self.list.row(item)
        text = item.text()
        name = text.split(": ", 1)[1] if text.startswith(f"{row}: ") else text
        self.list.blockSignals(True)
        item.setData(NAME_ROLE, name.strip() or item.data(NAME_ROLE))
        item.setText(f"{row}: {item.data(NAME_ROLE)}")
        self.list.blockSignals(False)

    def names(self) -> list[str]:
        return [self.list.item(i).data(NAME_ROLE) for i in range(self.list.count())]

    def choose_file(self) -> None:
        path = self.pick_file("Load labels", "", "Class lists (*.txt *.json)")
        if path:
            self.load_file(path)

    def load_file(self, path: str) -> bool:
        """Show the names in `path` (kept when the user applies); False, with `problem`, when
        the file is unreadable or its count is not the model's."""
        try:
            names = read_class_names(path)
        except UserError as exc:
            self.problem.emit(str(exc))
            return False
        count = self.list.count()
        if count and len(names) != count:
            self.problem.emit(
                f"{path}: not used: it has {len(names)} names but the model has {count} "
                "classes (a list for another model?)"
            )
            return False
        self.problem.emit("")
        self.fill(names)
        return True
