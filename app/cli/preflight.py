"""Checks the commands run before their work starts, so a problem is one line up front instead
of a traceback after minutes of work."""

from __future__ import annotations

from pathlib import Path

from app.core.errors import UserError
from app.core.model.workspace import Workspace
from app.core.safe_json import load_json

# Big enough for COCO's own annotation files (instances_val2017.json is 25 MB) and the ranges
# of a large model; the point here is the nesting, which the capped reader survives.
MAX_CHECKED_JSON_BYTES = 1024**3


def workspace_for_work(root: str | Path) -> Workspace:
    """An existing workspace whose spec and model check out and that this process can write
    in (results, variants and engines all go there)."""
    ws = Workspace.open(root)
    ws.spec()  # a hand-edited spec or a changed model file is refused here
    ws.check_writable()
    return ws


def check_json(path: str | Path | None, what: str, todo: str) -> None:
    """`path` (when given) parses as a JSON object: absurd nesting or bad syntax is one line
    naming the file, not a RecursionError deep inside a library's reader."""
    if not path:
        return
    try:
        load_json(path, max_bytes=MAX_CHECKED_JSON_BYTES)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: {what} unreadable ({exc}); {todo}") from exc


def check_calibration_ranges(ws: Workspace) -> None:
    """The latest calibration's ranges.json (which ONNX Runtime's own reader parses) is sound;
    a missing calibration is left to the step that needs it, which says what to do."""
    from app.core.quant.calibration import latest_calibration

    try:
        folder = latest_calibration(ws)
    except UserError:
        return
    check_json(folder / "ranges.json", "calibration ranges", "run `int8-studio calibrate` again")
