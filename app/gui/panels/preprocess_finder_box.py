"""The Model tab's "Find preprocessing…": candidates tried on the user's images, evidence shown
as a table with the chosen one marked, and Accept to apply it as the user's own correction."""

from __future__ import annotations

import dataclasses

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.core.errors import UserError
from app.core.eval.preprocess_finder import find_preprocessing
from app.core.eval.preprocess_search import SearchResult
from app.core.eval.search_report import accepted_notes, evidence_table
from app.core.model.spec import ModelSpec
from app.gui.panels.base import Panel


class PreprocessFinder(QGroupBox):
    """Runs the search in the panel's worker (run_job) and shows every candidate's evidence."""

    def __init__(self, panel: Panel) -> None:
        super().__init__("Find preprocessing on your images")
        self.panel = panel
        self.result: SearchResult | None = None
        self.result_sha = ""
        col = QVBoxLayout(self)
        row = QHBoxLayout()
        self.folder = QLineEdit()
        self.folder.setPlaceholderText(
            "a folder of your own images (class-named subfolders or a labels CSV: by accuracy)"
        )
        self.find_btn = QPushButton("Find preprocessing…")
        self.find_btn.clicked.connect(self.choose_and_find)
        self.accept_btn = QPushButton("Accept")
        self.accept_btn.setEnabled(False)
        self.accept_btn.clicked.connect(self.accept_choice)
        for w in (self.folder, self.find_btn, self.accept_btn):
            row.addWidget(w, 1 if w is self.folder else 0)
        col.addLayout(row)
        col.addWidget(panel.make_job_bar("", [self.find_btn]))
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)  # all 12 candidates in view
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(150)
        col.addWidget(self.table, 1)
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        col.addWidget(self.verdict)
        panel.state.spec_changed.connect(self._spec_changed)

    def choose_and_find(self) -> bool:
        folder = self.folder.text().strip() or self.panel.pick_folder("Images to try on")
        if not folder:
            return False
        self.folder.setText(folder)
        return self.find(folder)

    def find(self, folder: str) -> bool:
        """Start the search on `folder` for the open model (False: nothing started)."""
        spec = self.panel.state.spec
        if spec is None:
            self.panel.messages.set("job", "open a model first", "warning")
            return False
        self.accept_btn.setEnabled(False)
        return self.panel.run_job(
            find_preprocessing,
            spec,
            folder,
            name="find preprocessing",
            on_finished=self.show_result,
        )

    def show_result(self, result: SearchResult) -> None:
        spec = self.panel.state.spec
        self.result, self.result_sha = result, spec.sha256 if spec else ""
        heads, rows = evidence_table(result)
        self.table.setColumnCount(len(heads))
        self.table.setHorizontalHeaderLabels(heads)
        self.table.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for r, (ev, cells) in enumerate(zip(result.evidence, rows)):
            cells[0] = "✔ chosen" if cells[0] else ""
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if r == result.chosen:
                    item.setFont(bold)
                item.setToolTip(ev.alarm or ev.candidate.name)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.selectRow(result.chosen)
        ev = result.choice
        by = "; ".join(result.notes)
        self.verdict.setText(
            f"Found on {result.images} of your images ({by}): <b>{ev.candidate.name}</b>. "
            "Accept applies it to the model's preprocessing."
        )
        current = result.matching(spec.preprocess) if spec else None
        if ev.alarm:
            self.panel.messages.set("preprocessing", ev.alarm, "warning")
        elif current is not None and current.alarm:
            self.panel.messages.set(
                "preprocessing",
                f"the model's current preprocessing ({current.candidate.name}): {current.alarm}",
                "warning",
            )
        else:
            self.panel.messages.clear("preprocessing")
        self.accept_btn.setEnabled(True)

    def accept_choice(self) -> bool:
        """Apply the chosen candidate to the spec, recorded in its notes as set by the user."""
        spec, result = self.panel.state.spec, self.result
        if spec is None or result is None:
            return False
        pre = result.choice.candidate.apply(spec.preprocess)
        try:
            pre.validate()
        except UserError as exc:
            self.panel.messages.set("preprocess", str(exc), "error")
            return False
        notes = accepted_notes(spec.notes, result)
        self.panel.state.correct(dataclasses.replace(spec, preprocess=pre, notes=notes))
        self.panel.messages.clear("preprocessing")
        self.panel.messages.set(
            "preprocessing", f"preprocessing set to {result.choice.candidate.name}", "info"
        )
        self.accept_btn.setEnabled(False)
        return True

    def _spec_changed(self, spec: object) -> None:
        """Another model: its evidence does not belong to it."""
        if (
            isinstance(spec, ModelSpec)
            and self.result is not None
            and spec.sha256 != self.result_sha
        ):
            self.result = None
            self.table.setRowCount(0)
            self.verdict.setText("")
            self.accept_btn.setEnabled(False)
