"""The record saved beside every engine INT8 Studio builds, and the check run before loading one.

A side file `<engine>.json` is used rather than a header inside the engine file, because the
engine then stays a plain TensorRT plan that trtexec, Polygraphy or the ONNX Runtime EPContext
path can load as is, and the record stays readable in any text editor. The price is that the two
files can drift apart; the record therefore carries the engine's sha256 and size, so a stale
record, an edited engine or a truncated copy is caught before TensorRT sees the bytes.

Why check at all: a plan only loads on the TensorRT version and GPU it was built for, and a plan
from elsewhere can run arbitrary code through plugins, so an engine without our record is refused
unless the user confirms it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app import __version__ as APP_VERSION
from app.core.atomic import write_bytes, write_json
from app.core.errors import UserError
from app.core.safe_json import load_json

RECORD_FORMAT = 1
SIDE_SUFFIX = ".json"


@dataclass(frozen=True)
class EngineRecord:
    """What an engine was built from and with; stored as `<engine>.json`."""

    trt_version: str
    gpu_name: str
    compute_capability: str
    model_sha256: str
    settings: dict[str, Any]
    engine_sha256: str = ""
    engine_size: int = 0
    build_seconds: float = 0.0  # how long TensorRT took (shown with the engine; 0: unknown)
    app_version: str = APP_VERSION
    format: int = RECORD_FORMAT


@dataclass(frozen=True)
class EngineExpectation:
    """What the current run needs; a field left None is not checked."""

    trt_version: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None
    model_sha256: str | None = None
    settings: dict[str, Any] | None = field(default=None)


def side_path(engine_path: str | os.PathLike[str]) -> Path:
    """`model.engine` -> `model.engine.json`."""
    p = Path(engine_path)
    return p.with_name(p.name + SIDE_SUFFIX)


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hash a file in chunks (engines reach hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_engine(
    engine_path: str | os.PathLike[str], data: bytes | bytearray | memoryview, record: EngineRecord
) -> EngineRecord:
    """Write the engine, then its record, each atomically; returns the record with hash and size.

    Engine first: if the process dies between the two writes, the old record no longer matches
    the new engine's hash and `check_engine` says so, instead of trusting a mismatched pair.
    """
    blob = bytes(data)
    final = EngineRecord(
        **{**asdict(record), "engine_sha256": sha256_bytes(blob), "engine_size": len(blob)}
    )
    write_bytes(engine_path, blob)
    write_json(side_path(engine_path), asdict(final))
    return final


def read_record(engine_path: str | os.PathLike[str]) -> EngineRecord | None:
    """The record beside an engine, None when there is none; UserError when it is unreadable."""
    side = side_path(engine_path)
    if not side.exists():
        return None
    try:
        raw = load_json(side, max_bytes=1024 * 1024)
        known = {f for f in EngineRecord.__dataclass_fields__}
        record = EngineRecord(**{k: v for k, v in raw.items() if k in known})
        text_fields = (
            "trt_version",
            "gpu_name",
            "compute_capability",
            "model_sha256",
            "engine_sha256",
            "app_version",
        )
        if not all(isinstance(getattr(record, f), str) for f in text_fields):
            raise ValueError("a text field holds another type")
        if not isinstance(record.settings, dict) or not isinstance(record.engine_size, int):
            raise ValueError("settings must be an object and engine_size a number")
        if not isinstance(record.build_seconds, int | float):
            raise ValueError("build_seconds must be a number")
        return record
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(
            f"the record {side.name} beside the engine is unreadable ({exc}); rebuild"
        ) from exc


def _settings_diff(built: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    # Compare through JSON so tuples from dataclasses equal the lists read back from disk.
    a, b = json.loads(json.dumps(built)), json.loads(json.dumps(wanted))
    return [
        f"{key} {a.get(key)!r} -> {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _runs_on(record: EngineRecord, trt_version: str) -> bool:
    """Same TensorRT version; or a version-compatible plan on a later release of the same major.

    The "same major, not older" rule for version-compatible plans is our reading of NVIDIA's
    docs [unverified]; a plan TensorRT still refuses fails in deserialize with its own message.
    """
    if record.trt_version == trt_version:
        return True
    if not record.settings.get("version_compatible"):
        return False
    built, here = _version_tuple(record.trt_version), _version_tuple(trt_version)
    return bool(built) and bool(here) and built[0] == here[0] and here >= built


def check_engine(
    engine_path: str | os.PathLike[str],
    expected: EngineExpectation,
    *,
    allow_unrecorded: bool = False,
) -> EngineRecord | None:
    """Raise UserError naming every difference between the engine's record and `expected`.

    `allow_unrecorded=True` is the user's explicit "I trust this engine" for one without a record;
    then None is returned and nothing else can be checked.
    """
    path = Path(engine_path)
    if not path.is_file():
        raise UserError(f"engine file not found: {path}")
    record = read_record(path)
    if record is None:
        if allow_unrecorded:
            return None
        raise UserError(
            f"{path.name} was not built by INT8 Studio: engines can run code through plugins; "
            "rebuild or confirm"
        )

    problems: list[str] = []
    size = path.stat().st_size
    if size != record.engine_size:
        problems.append(
            f"engine is truncated or replaced ({size} bytes on disk, {record.engine_size} recorded)"
        )
    elif sha256_file(path) != record.engine_sha256:
        problems.append("engine bytes were altered since it was built")
    e = expected
    if e.trt_version is not None and not _runs_on(record, e.trt_version):
        problems.append(
            f"stale TensorRT version: built with {record.trt_version}, "
            f"this machine has {e.trt_version}"
        )
    gpu_differs = e.gpu_name is not None and record.gpu_name != e.gpu_name
    cc_differs = (
        e.compute_capability is not None and record.compute_capability != e.compute_capability
    )
    if gpu_differs or cc_differs:
        problems.append(
            f"built on another GPU: {record.gpu_name} (sm {record.compute_capability}), "
            f"this is {e.gpu_name or '?'} (sm {e.compute_capability or '?'})"
        )
    if e.model_sha256 is not None and record.model_sha256 != e.model_sha256:
        problems.append(
            f"built from another model (sha256 {record.model_sha256[:12]}, "
            f"expected {e.model_sha256[:12]})"
        )
    if e.settings is not None:
        diff = _settings_diff(record.settings, e.settings)
        if diff:
            problems.append("settings differ: " + ", ".join(diff))
    if problems:
        raise UserError(
            f"engine {path.name} cannot be used: " + "; ".join(problems) + "; rebuild it"
        )
    return record
