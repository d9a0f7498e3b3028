"""What every panel shares: app state, the worker pool, inline messages, settings, one way to
run a job (`run_job` with a `JobBar`); and the helper that runs a panel as its own window."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QVBoxLayout, QWidget

from app.backends.base import BackendStatus
from app.backends.registry import BACKENDS, backend_statuses
from app.gui.job_bar import JobBar
from app.gui.messages import MessageBar
from app.gui.settings import Settings
from app.gui.state import AppState
from app.gui.workers import Job, WorkerPool, default_pool

ASSETS = Path(__file__).resolve().parents[3].parent / "shared" / "assets"
LAST_DIR_KEY = "dialogs/last_dir"  # shared by every panel: the folder of the last file chosen


class Panel(QWidget):
    """Base panel: `self.messages` on top, the panel's own layout in `self.body`."""

    title = "Panel"
    settings_key = "panel"

    def __init__(
        self,
        state: AppState | None = None,
        pool: WorkerPool | None = None,
        settings: Settings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state or AppState()
        self.pool = pool or default_pool()
        self.settings = settings or Settings()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        self.messages = MessageBar(self)
        outer.addWidget(self.messages)
        self.body = QVBoxLayout()
        outer.addLayout(self.body, 1)
        self.job: Job | None = None  # the panel's one running job (run_job), if any
        self.job_buttons: list[QWidget] = []
        self.state.spec_changed.connect(self.on_spec_changed)

    def on_spec_changed(self, spec: object) -> None:
        """Override: the model (or its edited spec) changed."""

    def setting(self, name: str, default: object = None) -> object:
        return self.settings.get(f"{self.settings_key}/{name}", default)

    def set_setting(self, name: str, value: object) -> None:
        self.settings.set(f"{self.settings_key}/{name}", value)

    # file dialogs ----------------------------------------------------------------------------
    def start_dir(self, current: str = "") -> str:
        """Where a file dialog opens: the field's own file or folder, else the last folder used
        in any panel, else the open model's folder, else home (never the process's cwd)."""
        model = self.state.spec.path if self.state.spec is not None else ""
        for candidate in (current.strip(), str(self.settings.get(LAST_DIR_KEY, "") or ""), model):
            if not candidate:
                continue
            path = Path(candidate).expanduser()
            folder = path if path.is_dir() else path.parent
            if folder.is_dir() and str(folder) not in ("", "."):
                return str(folder)
        return str(Path.home())

    def remember_dir(self, chosen: str) -> None:
        """The folder of what the user chose becomes the next dialog's start."""
        path = Path(chosen)
        self.settings.set(LAST_DIR_KEY, str(path if path.is_dir() else path.parent))

    def pick_folder(self, title: str, current: str = "") -> str:
        """A folder dialog opening at `start_dir(current)`; '' when cancelled."""
        path = QFileDialog.getExistingDirectory(self, title, self.start_dir(current))
        if path:
            self.remember_dir(path)
        return path

    def pick_file(self, title: str, current: str = "", filters: str = "") -> str:
        """A file dialog opening at `start_dir(current)`; '' when cancelled."""
        path, _ = QFileDialog.getOpenFileName(self, title, self.start_dir(current), filters)
        if path:
            self.remember_dir(path)
        return path

    def show_job_error(self, message: str, _traceback: str = "") -> None:
        """Inline message for a failed job (the pool's sink has already logged it)."""
        self.messages.set("job", message, "error")

    # jobs ------------------------------------------------------------------------------------
    def make_job_bar(self, idle_text: str = "", buttons: Iterable[QWidget] = ()) -> JobBar:
        """This panel's job bar; `buttons` (those that start jobs) are disabled while one runs.
        The panel places the bar in its layout."""
        self.job_bar = JobBar(idle_text, self)
        self.job_bar.cancel_btn.clicked.connect(self.cancel)
        self.job_buttons = list(buttons)
        # the bar's parts by the names the panels, their tests and the screenshots use
        self.progress, self.status = self.job_bar.progress, self.job_bar.status
        self.cancel_btn = self.job_bar.cancel_btn
        return self.job_bar

    def run_job(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str,
        on_finished: Callable[[Any], None],
        cancelled: str = "Cancelled; earlier results kept.",
        **kwargs: Any,
    ) -> bool:
        """Run `fn(*args, progress=, cancel=, **kwargs)` in the pool with the job bar showing
        its progress; `on_finished` gets the result, a failure is an inline message, a cancel
        says `cancelled`. False (nothing started) while another job of this panel runs."""
        if self.job is not None:
            return False
        self.messages.clear("job")
        self.job_bar.started()
        for button in self.job_buttons:
            button.setEnabled(False)

        def finished(result: Any) -> None:
            self.job_bar.finished()
            on_finished(result)

        self.job = self.pool.start(
            fn,
            *args,
            name=name,
            on_progress=self.job_bar.set_progress,
            on_finished=finished,
            on_error=self.show_job_error,
            on_cancelled=lambda: self.status.setText(cancelled),
            on_done=self._job_done,
            **kwargs,
        )
        return True

    def cancel(self) -> None:
        """Ask the running job to stop (it stops at its next check)."""
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Cancelling…")

    def _job_done(self) -> None:
        self.job = None
        self.job_bar.stopped()
        for button in self.job_buttons:
            button.setEnabled(True)


def panel_of(widget: QWidget | None) -> Panel | None:
    """The panel a widget sits in (for parts built before they are placed in one)."""
    while widget is not None and not isinstance(widget, Panel):
        widget = widget.parentWidget()
    return widget


class BackendStatuses(QObject):
    """Probes backends once, off the GUI thread (a GPU probe can take seconds)."""

    ready = Signal(object)  # list[BackendStatus]; object: so `finished` connects to it

    def __init__(self, pool: WorkerPool) -> None:
        super().__init__()
        self.pool = pool

    def load(self) -> None:
        self.pool.start(
            lambda progress, cancel: list(backend_statuses()),
            name="backend probe",
            # signal to signal: Qt drops the connection when this object goes with its panel
            # (a bound `emit` would be called on the deleted object: "Signal source has been
            # deleted" when a panel closes before the probe ends)
            on_finished=self.ready,
        )


def fill_backend_combo(combo: QComboBox, statuses: list[BackendStatus], keep: str = "") -> None:
    """Backends in a combo; unavailable ones disabled with the reason as tooltip."""
    from PySide6.QtCore import Qt

    current = keep or combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    by_name = {s.name: s for s in statuses}
    for name in BACKENDS:
        status = by_name.get(name)
        combo.addItem(name)
        item = combo.model().item(combo.count() - 1)
        if status is not None and not status.available:
            item.setEnabled(False)
            item.setToolTip(status.reason)
            item.setText(f"{name} (unavailable)")
            item.setData(name, Qt.ItemDataRole.UserRole)
        else:
            item.setData(name, Qt.ItemDataRole.UserRole)
    index = max(0, combo.findData(current, Qt.ItemDataRole.UserRole))
    combo.setCurrentIndex(index)
    combo.blockSignals(False)


def run_panel(factory: Callable[[AppState], Panel], load_model: bool = True) -> int:
    """Run one panel in its own window; `argv[1]` (or the bundled YOLOX-Nano) is opened."""
    logging.basicConfig(level=logging.INFO)
    from app.core.errors import UserError
    from app.gui.qt_app import application

    try:
        app = application()  # the app's rules: platform check, GC on the GUI thread
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = AppState()
    panel = factory(state)
    panel.setWindowTitle(f"INT8 Studio – {panel.title}")
    panel.resize(1000, 700)
    model = sys.argv[1] if len(sys.argv) > 1 else str(ASSETS / "models" / "yolox-nano-coco")
    if load_model and Path(model).exists():
        from app.core.model.inspection import inspect_model

        try:
            state.open_spec(inspect_model(model))  # with the workspace's corrections
        except UserError as exc:
            panel.messages.set("model", str(exc))
    panel.show()
    code = app.exec()
    panel.pool.stop_all(3.0)
    return int(code)
