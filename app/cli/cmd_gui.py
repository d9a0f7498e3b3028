"""`int8-studio gui`: the desktop app, optionally scripted (play N frames, screenshot, report).

Qt is imported only when this command runs, so the rest of the CLI works without a display.
"""

from __future__ import annotations

import argparse


def register(subs: argparse._SubParsersAction) -> None:
    from app.gui.scripted import add_arguments  # argparse only; Qt is imported by run()

    p = subs.add_parser("gui", help="open the desktop app (scripted with --frames/--screenshot)")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.gui.scripted import run as run_gui

    return run_gui(args)
