"""Reading JSON the app did not necessarily write (sidecars, workspace records, engine records):
size-capped, never evaluated, and any malformation (bad syntax, absurd nesting, wrong top-level
type) reported as one `ValueError` the caller turns into a message or treats as "damaged"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 4 * 1024 * 1024


def load_json(path: str | Path, *, expect: type = dict, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse `path`; ValueError (with the reason) unless it is a `expect` under `max_bytes`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(f"file is larger than {max_bytes // (1024 * 1024)} MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError as exc:  # json nests by recursion: a hostile file can exhaust it
        raise ValueError("nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ValueError("not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(data, expect):
        raise ValueError(f"expected a JSON {expect.__name__}, found {type(data).__name__}")
    return data
