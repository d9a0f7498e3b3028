"""The main window: assembles the panels, log, status bar, menus and saved window state."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
)

from app.gui.model_reset import clear_previous_model
from app.gui.panel_tabs import PanelTabs
from app.gui.panels.calibration import CalibrationPanel
from app.gui.panels.compare import ComparePanel
from app.gui.panels.live import LivePanel
from app.gui.panels.model import ModelPanel
from app.gui.panels.precision import PrecisionPanel
from app.gui.panels.results import ResultsPanel
from app.gui.panels.variants import VariantsPanel
from app.gui.settings import Settings
from app.gui.state import AppState
from app.gui.workers import WorkerPool


def status_flag(info: dict[str, Any]) -> str:
    """The status bar's short flag for a run's `describe()`: where it fell back to, or the
    head of its caveat (it ran where asked, not in full as asked); "" when it ran as asked."""
    if info.get("fallback"):
        provider = str(info.get("provider") or "").removesuffix("ExecutionProvider")
        return f"⚠ fell back to {provider or 'another provider'}"
    caveat = str(info.get("caveat") or "")
    return f"\u2139 {caveat.split(':')[0].split(' (')[0]}" if caveat else ""


class LogSignal(QObject):
    record = Signal(str)


class LogBridge(logging.Handler):
    """A logging handler whose records reach the GUI thread as a signal (any thread may log)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.signal = LogSignal()
        self.record = self.signal.record

    def emit(self, record: logging.LogRecord) -> None:
        self.record.emit(self.format(record))


class MainWindow(QMainWindow):
    """One tab per task, a log dock and a status bar naming the backend and provider running."""

    def __init__(self, settings: Settings | None = None, workspace_root: str | None = None):
        super().__init__()
        self.setWindowTitle("INT8 Studio")
        self.settings = settings or Settings()
        self.state = AppState(workspace_root)
        self.pool = WorkerPool(self)
        args = (self.state, self.pool, self.settings)
        self.model_panel = ModelPanel(*args)
        self.calibration_panel = CalibrationPanel(*args)
        self.variants_panel = VariantsPanel(*args)
        self.live_panel = LivePanel(*args)
        self.compare_panel = ComparePanel(*args)
        self.results_panel = ResultsPanel(*args)
        self.precision_panel = PrecisionPanel(*args)
        self.panels = [
            self.model_panel,
            self.calibration_panel,
            self.variants_panel,
            self.live_panel,
            self.compare_panel,
            self.results_panel,
            self.precision_panel,
        ]
        self.tabs = PanelTabs()
        for panel in self.panels:
            self.tabs.add_panel(panel, panel.title)
        self.setCentralWidget(self.tabs)
        self._build_log()
        self._build_status()
        self._build_menus()
        self.pool.error.connect(self._job_failed)
        self.state.message.connect(self.log_line)
        self.state.runner_info.connect(self._runner_info)
        self.state.model_changed.connect(lambda spec: clear_previous_model(self, spec))
        self.state.spec_changed.connect(self._spec_changed)
        self.model_panel.model_opened.connect(self._remember_model)
        self.restore()

    # building --------------------------------------------------------------------------------
    def _build_log(self) -> None:
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        dock = QDockWidget("Log", self)
        dock.setObjectName("log_dock")
        dock.setWidget(self.log_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.log_dock = dock
        self.resizeDocks([dock], [90], Qt.Orientation.Vertical)  # frames get the room
        self.log_bridge = LogBridge()
        self.log_bridge.record.connect(self.log_line)
        logging.getLogger("app").addHandler(self.log_bridge)
        logging.getLogger("app").setLevel(logging.INFO)

    def _build_status(self) -> None:
        self.backend_label = QLabel("no runner")
        self.fallback_label = QLabel("")
        self.fallback_label.setStyleSheet("color:#8a1f11; font-weight:bold;")
        self.fallback_label.setVisible(False)
        self.statusBar().addPermanentWidget(self.fallback_label)
        self.statusBar().addPermanentWidget(self.backend_label)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(
            file_menu, "&Open model…", QKeySequence.StandardKey.Open, self.model_panel.choose_file
        )
        self._action(file_menu, "Open &folder…", "Ctrl+Shift+O", self.model_panel.choose_folder)
        self.recent_menu = file_menu.addMenu("Recent models")
        self._action(file_menu, "Open &results…", "Ctrl+R", self.results_panel._choose)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        view_menu = self.menuBar().addMenu("&View")
        for i, panel in enumerate(self.panels):
            self._action(
                view_menu,
                panel.title,
                f"Ctrl+{i + 1}",
                lambda p=panel: self.tabs.setCurrentWidget(p),
            )
        view_menu.addAction(self.log_dock.toggleViewAction())
        self._fill_recent()

    def _action(self, menu: Any, text: str, shortcut: Any, slot: Any) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        items = self.settings.recent("models")
        for path in items:
            self._action(self.recent_menu, path, "", lambda p=path: self.open_model(p))
        self.recent_menu.setEnabled(bool(items))

    # behaviour -------------------------------------------------------------------------------
    def open_model(self, path: str) -> None:
        self.tabs.setCurrentWidget(self.model_panel)
        self.model_panel.open_model(path)

    def _remember_model(self, path: str) -> None:
        self.settings.add_recent("models", str(Path(path).resolve()))
        self._fill_recent()

    def _spec_changed(self, spec: Any) -> None:
        if spec is not None:
            self.setWindowTitle(f"INT8 Studio – {Path(spec.path).name}")

    def log_line(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _job_failed(self, name: str, message: str, _tb: str) -> None:
        self.statusBar().showMessage(f"{name} failed: {message}", 8000)

    def _runner_info(self, info: dict) -> None:
        variant = f"{info.get('variant')} on " if info.get("variant") else ""
        self.backend_label.setText(f"{variant}{info.get('backend')} · {info.get('provider')}")
        fallback, caveat = info.get("fallback") or "", info.get("caveat") or ""
        self.fallback_label.setText(status_flag(info))
        # a fallback in red; a caveat (it ran where asked) in the info messages' blue
        self.fallback_label.setStyleSheet(
            f"color:{'#8a1f11' if fallback else '#1d3f73'}; font-weight:bold;"
        )
        self.fallback_label.setToolTip(fallback or caveat)
        self.fallback_label.setVisible(bool(fallback or caveat))
        parts = [f"{variant}{info.get('backend')} ({info.get('provider')})"]
        if info.get("fused_io"):
            parts.append("uint8 frames into the graph (fused I/O)")
        if fallback:
            parts.append(f"warning: {fallback}")
        if caveat:
            parts.append(f"note: {caveat}")
        if note := self._layout_note(info):
            parts.append(f"note: {note}")
        self.log_line("running " + "; ".join(parts))

    def _layout_note(self, info: dict) -> str | None:
        """`targets.layout_note` for the variant that started (its record says its layout)."""
        from app.core.errors import UserError
        from app.core.quant.targets import layout_note

        name = str(info.get("variant") or "")
        try:
            metas = {str(m.get("name")): m for m in self.state.variant_metas()}
        except UserError:
            return None
        target = (metas.get(name) or {}).get("target")
        return layout_note(name, target, str(info.get("backend") or ""))

    # settings --------------------------------------------------------------------------------
    def restore(self) -> None:
        geometry = self.settings.get("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 860)
        state = self.settings.get("window/state")
        if state is not None:
            self.restoreState(state)
        self.tabs.setCurrentIndex(self.settings.get("window/tab", 0))

    def save(self) -> None:
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.set("window/state", self.saveState())
        self.settings.set("window/tab", self.tabs.currentIndex())
        self.settings.sync()

    def closeEvent(self, event) -> None:
        """Stop every worker (cooperatively, waiting briefly) so no thread outlives the window."""
        self.save()
        self.pool.stop_all(5.0)
        logging.getLogger("app").removeHandler(self.log_bridge)
        super().closeEvent(event)
