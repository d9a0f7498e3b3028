"""Entry script of the PyInstaller bundle: the `int8-studio` command (app/cli/main.py main())."""

from __future__ import annotations

import multiprocessing
import sys

from app.cli.main import main

if __name__ == "__main__":
    # A frozen executable re-runs itself for any child process; this makes such a child behave.
    multiprocessing.freeze_support()
    sys.exit(main())
