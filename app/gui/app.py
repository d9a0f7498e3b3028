"""Start the desktop app: `python -m app.gui.app [model]` (the CLI's `gui` command does too)."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication


def application() -> QApplication:
    """The one QApplication (created on first use)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("INT8 Studio")
        app.setOrganizationName("INT8 Studio")
    return app  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    from app.cli.cmd_gui import main as gui_main

    return gui_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
