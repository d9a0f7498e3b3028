"""`int8-studio gui`: the desktop app, optionally scripted (play N frames, screenshot, report).

Qt is imported only when this command runs, so the rest of the CLI works without a display.
"""

from __future__ import annotations

import argparse
import os
import sys

from app.core.errors import UserError


def register(subs: argparse._SubParsersAction) -> None:
    from app.gui.scripted import add_arguments  # argparse only; Qt is imported by run()

    p = subs.add_parser("gui", help="open the desktop app (scripted with --frames/--screenshot)")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    no_display = (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("QT_QPA_PLATFORM")
    )
    if no_display:  # Qt would abort the process with a core dump instead of a message
        raise UserError(
            "no display found (DISPLAY is not set): start the app on a desktop, use the "
            "command line (int8-studio --help), or set QT_QPA_PLATFORM=offscreen for a "
            "scripted run"
        )
    from app.gui.scripted import run as run_gui

    return run_gui(args)
