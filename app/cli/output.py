"""Printing helpers for the CLI: plain tables, a progress bar on stderr, JSON files."""

from __future__ import annotations

import re
import shutil
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


def run_notes(info: dict[str, Any], name: str = "") -> list[str]:
    """What a run's `describe()` (or a report row) says went other than asked: "warning: ..."
    when it ran elsewhere (a fallback), "note: ..." when it ran where asked with a caveat."""
    who = f"{name}: " if name else ""
    lines = [f"warning: {who}{info['fallback']}"] if info.get("fallback") else []
    if info.get("caveat"):
        lines.append(f"note: {who}{info['caveat']}")
    return lines


def save_json(path: str | Path | None, data: Any) -> None:
    if path:
        write_json(Path(path), data)
        print(f"wrote {path}", file=sys.stderr)


_OPEN_BARS: list[ProgressBar] = []


def end_progress() -> None:
    """Close every bar still drawn (work that failed or was cancelled mid-way), so the message
    that follows starts on a line of its own."""
    for bar in list(_OPEN_BARS):
        bar.close()


class ProgressBar:
    """`callback(fraction, message)` for long work: a tqdm bar on stderr when it is a terminal,
    else (with `plain`) a plain line at every tenth: logs and pipes get no carriage returns."""

    def __init__(self, label: str, enabled: bool | None = None, *, plain: bool = True) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.plain = plain
        self._last = 0.0
        self._tenths = -1  # the last tenth printed as a plain line
        self._bar: Any = None

    def __call__(self, fraction: float, message: str = "") -> None:
        fraction = max(0.0, min(1.0, fraction))
        if not self.enabled:
            if self.plain:
                self._plain(fraction, message)
            return
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < 0.2:
            return
        self._last = now
        if self._bar is None:
            from tqdm import tqdm

            # A terminal that reports no size (a fresh pty, a serial console) would get no
            # bar from tqdm (0 columns, 0 rows hides it): fall back to 100x24.
            cols, rows = shutil.get_terminal_size((100, 24))
            self._bar = tqdm(
                total=100,
                ncols=cols,
                nrows=rows,
                desc=self.label,
                file=sys.stderr,
                bar_format="{desc} |{bar:30}| {percentage:5.1f}% {elapsed}<{remaining} {postfix}",
                leave=True,
            )
            _OPEN_BARS.append(self)
        self._bar.n = round(fraction * 100, 1)
        self._bar.set_postfix_str(message[:60], refresh=False)
        self._bar.refresh()
        if fraction >= 1.0:
            self.close()

    def _plain(self, fraction: float, message: str) -> None:
        tenths = int(fraction * 10)
        if tenths <= self._tenths:
            return
        self._tenths = tenths
        print(f"{self.label}: {tenths * 10}% {message[:60]}".rstrip(), file=sys.stderr, flush=True)

    def close(self) -> None:
        """End the bar's line (done or failed) so what follows starts on its own line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            _OPEN_BARS.remove(self)


def safe_name(text: str) -> str:
    """A file name that cannot leave the output folder (no separators, no dot-dot)."""
    name = re.sub(r"[^\w.\-]+", "_", text, flags=re.UNICODE).strip("._") or "frame"
    return name[:150]
