"""The job bar every panel that runs long work shows: progress bar, status text and Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

STEPS = 1000  # progress bar resolution: fractions to a tenth of a percent


class JobBar(QWidget):
    """Progress, status and Cancel of one job at a time. `Panel.run_job` drives it; the panel
    connects nothing but reads `status` for its own texts. The bar shows only while a job runs
    (idle, an empty bar reads as an empty field); the status text stays after the job ends."""

    def __init__(self, idle_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar()
        self.progress.setRange(0, STEPS)
        self.progress.setFormat("%p%")
        self.progress.setMinimumWidth(160)
        self.progress.setVisible(False)
        self.status = QLabel(idle_text)
        self.status.setMinimumWidth(120)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        row.addWidget(self.progress, 1)
        row.addWidget(self.status, 2)
        row.addWidget(self.cancel_btn)

    def started(self) -> None:
        """A job began: empty bar shown, Cancel enabled."""
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_btn.setEnabled(True)
        self.status.setText("starting…")

    def set_progress(self, fraction: float, message: str) -> None:
        """The job's own report (on the GUI thread, rate-limited by the worker)."""
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * STEPS))
        if message:
            self.status.setText(message)

    def finished(self) -> None:
        """The job returned a result: a full bar until `stopped` hides it."""
        self.progress.setValue(STEPS)

    def stopped(self) -> None:
        """The job is over, whatever happened: bar hidden, Cancel disabled, text kept."""
        self.progress.setVisible(False)
        self.cancel_btn.setEnabled(False)
