"""The Results tab's verdict: the user's target drop, and per backend the fastest variant
within it on the accuracy axis shown (computed by `app.core.eval.recommend`)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from app.core import defaults
from app.core.eval.recommend import across_backends, recommend


class AdviceBox(QWidget):
    """A "Target drop" box and the sentences `recommend` returns for the shown report."""

    target_changed = Signal(float)  # the user's new target (the panel keeps it in settings)

    def __init__(self, target_drop: float, parent: Any = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.target_drop = QDoubleSpinBox()
        self.target_drop.setRange(0.0, 100.0)
        self.target_drop.setDecimals(1)
        self.target_drop.setSingleStep(0.5)
        self.target_drop.setValue(target_drop)
        bars = ", ".join(f"{k} {v:g}" for k, v in defaults.MIN_AGREEMENT.items())
        self.target_drop.setToolTip(
            "Largest accepted drop of the accuracy axis below fp32 (points); scored without "
            f"labels, the agreement bars apply instead ({bars})"
        )
        self.target_drop.valueChanged.connect(self._changed)
        self.advice = QLabel("")
        self.advice.setTextFormat(Qt.TextFormat.RichText)
        self.advice.setWordWrap(True)
        self.advice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.lines: list[str] = []  # what it says, as plain text
        self.report: dict[str, Any] = {}
        self.metric = ""
        row.addWidget(QLabel("Target drop"), 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.target_drop, 0, Qt.AlignmentFlag.AlignTop)
        row.addSpacing(8)
        row.addWidget(self.advice, 1)

    def show_for(self, report: dict[str, Any], metric: str) -> None:
        """Judge `report` on `metric` (nothing when either is empty)."""
        self.report, self.metric = report, metric
        found = recommend(report, metric, self.target_drop.value()) if report and metric else []
        overall = across_backends(found)
        self.lines = [line for r in found for line in r.lines] + ([overall] if overall else [])
        # each backend's verdict in bold, the reasons under it; then which backend's is fastest
        shown = [
            f"<b>{html.escape(line)}</b>" if i == 0 else html.escape(line)
            for r in found
            for i, line in enumerate(r.lines)
        ]
        self.advice.setText(
            "<br>".join(shown + ([f"<b>{html.escape(overall)}</b>"] if overall else []))
        )

    def _changed(self, value: float) -> None:
        self.target_changed.emit(value)
        self.show_for(self.report, self.metric)
