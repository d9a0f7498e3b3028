"""`int8-studio` entry point: subcommands, and the one place CLI errors become messages."""

from __future__ import annotations

import argparse
import sys

from app import __version__
from app.core.errors import Cancelled, UserError

COMMANDS = [
    "app.cli.cmd_inspect",
    "app.cli.cmd_backends",
    "app.cli.cmd_run",
    "app.cli.cmd_calibrate",
    "app.cli.cmd_quantize",
    "app.cli.cmd_evaluate",
    "app.cli.cmd_bench",
]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="int8-studio",
        description="Calibrate, quantize, build and compare vision models (ORT, TensorRT).",
    )
    parser.add_argument("--version", action="version", version=f"int8-studio {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(subs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # No subcommand: start the desktop app, as a double-clicked launcher would.
        args = (
            parser.parse_args(["gui", *(argv or sys.argv[1:])])
            if "gui" in _commands(parser)
            else None
        )
        if args is None:
            parser.print_help()
            return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"int8-studio: error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print("int8-studio: cancelled; nothing half-written was kept", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nint8-studio: interrupted", file=sys.stderr)
        return 130


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()
