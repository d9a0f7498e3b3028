"""Locate the bundled `resources/` folder (presets, label lists, icons) in a checkout or install."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path


@cache
def resources_dir() -> Path:
    """The resources folder: next to `app/` in a checkout, `app_resources` when pip-installed,
    or beside the executable in a PyInstaller bundle."""
    candidates = [Path(__file__).resolve().parents[2] / "resources"]
    if getattr(sys, "frozen", False):
        candidates.insert(0, Path(getattr(sys, "_MEIPASS", ".")) / "resources")
    try:
        from importlib.resources import files

        candidates.append(Path(str(files("app_resources"))))  # the installed copy
    except (ImportError, TypeError):
        pass
    for path in candidates:
        if (path / "presets").is_dir():
            return path
    return candidates[0]
