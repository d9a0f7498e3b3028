"""`int8-studio` entry point: subcommands, and the one place CLI errors become messages."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from typing import TextIO

from app import __version__
from app.cli.output import end_progress
from app.core.errors import Cancelled, UserError

DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
# Errors about the place a file goes (not its content): one line naming the file and what to do.
CANNOT_WRITE = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted (an immutable file or folder?)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
}
COMMANDS = [
    "app.cli.cmd_inspect",
    "app.cli.cmd_backends",
    "app.cli.cmd_run",
    "app.cli.cmd_calibrate",
    "app.cli.cmd_quantize",
    "app.cli.cmd_build",
    "app.cli.cmd_evaluate",
    "app.cli.cmd_bench",
    "app.cli.cmd_fetch_demo",
    "app.cli.cmd_adapt",
    "app.cli.cmd_debug_precision",
    "app.cli.cmd_compare",
    "app.cli.cmd_gui",
]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="int8-studio",
        description=(
            "Calibrate, quantize, build and compare vision models "
            "(ONNX Runtime, OpenVINO, TensorRT)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"int8-studio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(subs)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes, as logging's last-resort handler
    does: a handler holding the stream it was made with keeps writing to it after an embedding
    program (or a test harness) has swapped and closed it, and logging then prints its own
    "--- Logging error ---" traceback instead of the message."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class _OncePerRun(logging.Filter):
    """Passes each distinct message once: one command builds several graphs from the same
    model, and each build logging "space-to-depth folded into Conv_41" again told nothing new."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def setup_logging(verbose: bool = False) -> None:
    """The app's own log (reuse/rebuild decisions, fallbacks) to stderr; library chatter off.

    ONNX Runtime's quantization tools log advice through the root logger on every call; it is
    noise for our users, so the root logger only passes errors.
    """
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.ERROR)
    app_log = logging.getLogger("app")
    if not app_log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        app_log.addHandler(handler)
    for handler in app_log.handlers:  # a new command: nothing said yet (-v: repeats too)
        for old in [f for f in handler.filters if isinstance(f, _OncePerRun)]:
            handler.removeFilter(old)
        if not verbose:
            handler.addFilter(_OncePerRun())
    app_log.setLevel(logging.DEBUG if verbose else logging.INFO)
    app_log.propagate = False


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a service manager stopping us): unwinds exactly like Ctrl-C, so every
    atomic write in progress removes its temporary file."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    setup_logging("-v" in (argv if argv is not None else sys.argv[1:]))
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
    # Not for the GUI: a handler raising inside a Qt slot would not unwind its jobs; it keeps
    # the default, and what a killed job left is cleaned when its workspace is next opened.
    if args.command != "gui":
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            return int(args.func(args) or 0)
        finally:
            end_progress()
    except UserError as exc:
        print(f"int8-studio: error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print("int8-studio: cancelled; nothing half-written was kept", file=sys.stderr)
        return 130
    except Terminated:
        print("int8-studio: terminated; nothing half-written was kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("\nint8-studio: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno in CANNOT_WRITE:
            where = exc.filename or "a file"
            print(
                f"int8-studio: error: cannot use {where}: {CANNOT_WRITE[exc.errno]}; choose "
                "another location (or fix its permissions) and run again",
                file=sys.stderr,
            )
            return 2
        if exc.errno not in DISK_FULL:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"int8-studio: error: disk full while writing{where} ({exc.strerror}); free some "
            "space and run "
            "again (nothing half-written was kept)",
            file=sys.stderr,
        )
        return 2


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


if __name__ == "__main__":
    sys.exit(main())
