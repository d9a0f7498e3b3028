"""Find a model's workspace by the model's content (its SHA-256), wherever the file now is.

The index (`workspace-index.json`, beside the default workspaces folder in the user data dir)
maps a model's SHA-256 to the workspace last used for it, so a workspace made with
`--workspace FOLDER` is found again too; default-named folders (`<stem>-<sha8>`) are found by
name even without the index.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.core.atomic import write_json
from app.core.safe_json import load_json

log = logging.getLogger(__name__)
INDEX_NAME = "workspace-index.json"


def index_path(workspaces_dir: Path) -> Path:
    return Path(workspaces_dir).parent / INDEX_NAME


def _read_index(workspaces_dir: Path) -> dict[str, Any]:
    try:
        data = load_json(index_path(workspaces_dir), expect=dict)
    except (OSError, ValueError):
        return {}  # no index yet, or a damaged one: rebuilt as workspaces are used
    return data if isinstance(data, dict) else {}


def workspace_holds(root: Path, sha256: str) -> bool:
    """True when `root` is a workspace whose spec was made from the model with `sha256`."""
    try:
        return load_json(Path(root) / "spec.json", expect=dict).get("sha256") == sha256
    except (OSError, ValueError, AttributeError):
        return False


def find_workspace(sha256: str, workspaces_dir: Path) -> Path | None:
    """The workspace of the model with `sha256`: the one the index names (if it still holds that
    model), else a default-named one in `workspaces_dir`; None when there is none."""
    named = _read_index(workspaces_dir).get(sha256)
    if isinstance(named, str) and workspace_holds(Path(named), sha256):
        return Path(named)
    folder = Path(workspaces_dir)
    try:
        candidates = sorted(folder.glob(f"*-{sha256[:8]}")) if folder.is_dir() else []
    except OSError:  # a data dir this user cannot list: no workspace found, nothing refused
        return None
    for candidate in candidates:
        if workspace_holds(candidate, sha256):
            return candidate
    return None


def remember_workspace(sha256: str, root: Path, workspaces_dir: Path) -> None:
    """Record `root` as the workspace of the model with `sha256` (atomic; a read-only data dir
    only loses the shortcut, never the workspace)."""
    index = _read_index(workspaces_dir)
    root_text = str(Path(root).resolve())
    if index.get(sha256) == root_text:
        return
    index[sha256] = root_text
    try:
        write_json(index_path(workspaces_dir), index)
    except OSError as exc:
        log.debug("workspace index not updated: %s", exc)
