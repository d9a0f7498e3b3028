"""Printing helpers for the CLI: plain tables, a progress bar on stderr, JSON files."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.core.atomic import write_json


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned text table with a header rule."""
    cells = [[str(h) for h in headers]] + [
        ["" if v is None else str(v) for v in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_json(path: str | Path | None, data: Any) -> None:
    if path:
        write_json(Path(path), data)
        print(f"wrote {path}", file=sys.stderr)


class ProgressBar:
    """`callback(fraction, message)` that draws a one-line bar on stderr (rate-limited)."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0
        self._start = time.monotonic()

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < 0.2:
            return
        self._last = now
        if not self.enabled:
            return
        width = 30
        done = int(width * max(0.0, min(1.0, fraction)))
        bar = "#" * done + "-" * (width - done)
        sys.stderr.write(f"\r{self.label} [{bar}] {fraction * 100:5.1f}% {message[:60]:<60}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()


def safe_name(text: str) -> str:
    """A file name that cannot leave the output folder (no separators, no dot-dot)."""
    name = re.sub(r"[^\w.\-]+", "_", text, flags=re.UNICODE).strip("._") or "frame"
    return name[:150]
