"""Start the desktop app: `python -m app.gui.app [model]` (the CLI's `gui` command does too)."""

from __future__ import annotations

import gc
import sys

from PySide6.QtWidgets import QApplication

SWITCH_INTERVAL_S = 0.0005


def application() -> QApplication:
    """The one QApplication (created on first use)."""
    app = QApplication.instance()
    if app is None:
        # The GUI thread, the frame reader, inference and drawing hand the GIL to each other
        # around short C calls many times per frame; with CPython's default 5 ms switch
        # interval a thread that wants it back can wait that long (run_live does the same).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        app = QApplication(sys.argv[:1])
        app.setApplicationName("INT8 Studio")
        app.setOrganizationName("INT8 Studio")
    return app  # type: ignore[return-value]


def settle_heap() -> None:
    """Call once the main window exists: its ~90,000 long-lived Python objects (Qt wrappers,
    pyqtgraph, numpy, ONNX) move out of the cyclic collector's reach. Otherwise each full
    collection, triggered by whichever thread allocates, walks them all while holding the GIL:
    25 ms with the GUI thread frozen on a 2-core machine."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    from app.cli.cmd_gui import main as gui_main

    return gui_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
