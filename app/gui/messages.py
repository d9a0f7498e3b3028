"""Inline panel messages (the Orange3 way): problems shown in the panel, cleared when fixed."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

STYLES = {
    "error": "background:#fde2e1; color:#8a1f11; border:1px solid #e8a29b;",
    "warning": "background:#fff4d6; color:#6b4e00; border:1px solid #e6cf8a;",
    "info": "background:#e3efff; color:#1d3f73; border:1px solid #a9c4ea;",
}
ICONS = {"error": "\u2716", "warning": "\u26a0", "info": "\u2139"}


class MessageBar(QWidget):
    """A stack of keyed, non-blocking messages; `set(key, text)` replaces, `clear(key)` removes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._labels: dict[str, QLabel] = {}
        self.setVisible(False)

    def set(self, key: str, text: str, level: str = "error") -> None:
        label = self._labels.get(key)
        if label is None:
            label = QLabel(self)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._layout.addWidget(label)
            self._labels[key] = label
        label.setStyleSheet(STYLES.get(level, STYLES["info"]) + "padding:4px; border-radius:3px;")
        label.setText(f"{ICONS.get(level, '')} {text}")
        label.setProperty("level", level)
        self.setVisible(True)

    def clear(self, key: str | None = None) -> None:
        """Remove one message, or all of them when `key` is None."""
        keys = list(self._labels) if key is None else [key]
        for k in keys:
            label = self._labels.pop(k, None)
            if label is not None:
                self._layout.removeWidget(label)
                label.deleteLater()
        self.setVisible(bool(self._labels))

    def text(self, key: str) -> str:
        label = self._labels.get(key)
        return label.text() if label is not None else ""

    def has(self, key: str) -> bool:
        return key in self._labels

    def keys(self) -> list[str]:
        return list(self._labels)
