"""The Model tab's offer for a model the app opens only through a copy (a half-precision export,
nodes out of order, no batch axis, one channel): write the copy `adapt` writes, open that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QPushButton

from app.core.errors import FixableByCopy
from app.core.model.adapted_copy import AdaptedCopy, write_adapted_copy
from app.core.model.inspection import inspect_model
from app.core.model.spec import ModelSpec


def inspect_or_offer(path: str) -> ModelSpec | FixableByCopy:
    """`inspect_model`, with the refusal of a model a copy would fix returned (to show with
    the offer) rather than raised."""
    try:
        return inspect_model(path)
    except FixableByCopy as exc:
        return exc


class CopyOffer(QPushButton):
    """Hidden until `offer(path, refusal)` (a model a copy would fix); clicked, it runs
    `write_adapted_copy` on that path off the GUI thread and opens the copy in `panel` (or shows why
    it failed)."""

    def __init__(self, panel: Any) -> None:
        super().__init__(FixableByCopy.action)
        self.panel, self.source = panel, ""
        self.setVisible(False)
        self.clicked.connect(self.start)

    def offer(self, path: str, refusal: FixableByCopy) -> None:
        self.source = path  # the refused model, whatever the path field says by the click
        self.setText(refusal.action)
        self.setVisible(True)

    def start(self) -> None:
        source = self.source
        self.setEnabled(False)
        self.panel.summary.setText(f"Writing a copy of {source} …")
        self.panel.pool.start(
            lambda progress, cancel: write_adapted_copy(Path(source)),
            name="write adapted copy",
            on_finished=self._done,
            on_error=self._failed,
        )

    def _done(self, copy: AdaptedCopy) -> None:
        self.setEnabled(True)
        self.panel.state.message.emit(f"wrote {copy.path}: {copy.summary()}")
        self.panel.open_model(str(copy.path))

    def _failed(self, message: str, _tb: str) -> None:
        self.setEnabled(True)
        self.panel.show_open_error(message)
