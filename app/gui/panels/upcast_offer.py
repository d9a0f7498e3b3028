"""The Model tab's offer for a half-precision export: write its FP32 copy, then open that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QPushButton

from app.core.errors import HalfPrecisionModel
from app.core.model.inspection import inspect_model
from app.core.model.spec import ModelSpec


def inspect_or_offer(path: str) -> ModelSpec | HalfPrecisionModel:
    """`inspect_model`, with a half-precision export's refusal returned (to show with the
    offer) rather than raised."""
    try:
        return inspect_model(path)
    except HalfPrecisionModel as exc:
        return exc


class UpcastOffer(QPushButton):
    """Hidden until `offer(path)` (a model refused as float16); clicked, it runs `upcast_file`
    on that path off the GUI thread and opens the copy in `panel` (or shows why it failed)."""

    def __init__(self, panel: Any) -> None:
        super().__init__("Write an FP32 copy and open it")
        self.panel, self.source = panel, ""
        self.setVisible(False)
        self.clicked.connect(self.start)

    def offer(self, path: str) -> None:
        self.source = path  # the refused model, whatever the path field says by the click
        self.setVisible(True)

    def start(self) -> None:
        from app.core.model.upcast import upcast_file

        source = self.source
        self.setEnabled(False)
        self.panel.summary.setText(f"Writing an FP32 copy of {source} …")
        self.panel.pool.start(
            lambda progress, cancel: upcast_file(Path(source)),
            name="upcast model",
            on_finished=self._done,
            on_error=self._failed,
        )

    def _done(self, result: tuple[Path, int]) -> None:
        self.setEnabled(True)
        self.panel.state.message.emit(
            f"wrote {result[0]}: {result[1]} float16 weights, types and attributes widened"
        )
        self.panel.open_model(str(result[0]))

    def _failed(self, message: str, _tb: str) -> None:
        self.setEnabled(True)
        self.panel.show_open_error(message)
