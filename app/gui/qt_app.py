"""The one QApplication, and the process-wide rules that come with it (GIL switch interval, the
cyclic collector on the GUI thread only, a settled heap)."""

from __future__ import annotations

import gc
import sys

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from app.gui.platform_check import check_platform

SWITCH_INTERVAL_S = 0.0005


def application() -> QApplication:
    """The one QApplication (created on first use)."""
    app = QApplication.instance()
    if app is None:
        release = check_platform()  # Qt would abort with a core dump, naming no library
        # The GUI thread, the frame reader, inference and drawing hand the GIL to each other
        # around short C calls many times per frame; with CPython's default 5 ms switch
        # interval a thread that wants it back can wait that long (run_live does the same).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        app = QApplication(sys.argv[:1])
        release()  # the display check's connection, held until Qt had its own
        app.setApplicationName("INT8 Studio")
        app.setOrganizationName("INT8 Studio")
        app.gui_gc = GuiThreadCollector(app)  # type: ignore[attr-defined]
    return app  # type: ignore[return-value]


class GuiThreadCollector(QObject):
    """Python's cyclic garbage collector, run only on the GUI thread.

    Left automatic, a collection runs in whichever thread happens to allocate: a frame reader,
    an inference worker, an HTTP download. If it frees a reference cycle that holds a Qt widget,
    the widget is destroyed off the GUI thread, and Qt crashes (a segfault seen once in the test
    suite, in a local HTTP server's thread). So automatic collection is off and this timer
    collects, generation by generation as CPython would, on the GUI thread (the well-known
    PyQt recipe; `gc.freeze` in `settle_heap` keeps the full collections short).
    """

    def __init__(self, parent: QObject, interval_ms: int = 500) -> None:
        super().__init__(parent)
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check)
        self._timer.start(interval_ms)

    def check(self) -> None:
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if c0 > t0:
            gc.collect(2 if c2 > t2 else 1 if c1 > t1 else 0)


def settle_heap() -> None:
    """Call once the main window exists: its ~90,000 long-lived Python objects (Qt wrappers,
    pyqtgraph, numpy, ONNX) move out of the cyclic collector's reach. Otherwise each full
    collection, triggered by whichever thread allocates, walks them all while holding the GIL:
    25 ms with the GUI thread frozen on a 2-core machine."""
    gc.collect()
    gc.freeze()
