"""What exporters write into an ONNX file's metadata_props: class names, input size, stride, task.

Ultralytics writes `names` ("{0: 'person', ...}"), `imgsz` ("[640, 640]"), `stride`, `task` and an
`author`/`description` naming itself; YOLOv5 writes `names` and `stride`; other exporters use
`labels`, `classes` or `class_names`, as a JSON or Python list or mapping. Values are parsed as
literals only (never evaluated), and a value that does not parse is reported, never fatal.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import Any

import onnx

NAME_KEYS = ("names", "labels", "classes", "class_names")
MAX_VALUE_CHARS = 1_000_000  # a class list is kilobytes; refuse anything absurd


@dataclass
class ModelMetadata:
    """The facts found in the metadata, and where each came from (`notes`)."""

    names: list[str] | None = None
    imgsz: list[int] | None = None  # [height, width]
    stride: int | None = None
    task: str | None = None
    ultralytics: bool = False  # Ultralytics/YOLOv5 family: letterbox centred, pad 114, RGB, /255
    rt_detr: bool = False  # Ultralytics RT-DETR: stretched to the square input, no letterbox
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _literal(text: str) -> Any:
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError("value longer than 1 MB")
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)  # Python literals only: "{0: 'person'}" as Ultralytics writes


def parse_names(text: str) -> list[str]:
    """Class names from a mapping {id: name} (ids may skip), a list, or comma-separated text."""
    text = text.strip()
    if text[:1] not in "[{(":
        names = [n.strip() for n in text.replace("\n", ",").split(",")]
        if len(names) < 2 or not all(names):
            raise ValueError("not a list of names")
        return names
    value = _literal(text)
    if isinstance(value, dict):
        ids = {int(k): str(v) for k, v in value.items()}
        if not ids or min(ids) < 0 or max(ids) > 100_000:
            raise ValueError("class ids out of range")
        return [ids.get(i, f"class {i}") for i in range(max(ids) + 1)]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("expected a mapping {id: name} or a list of names")


def _size(text: str) -> list[int]:
    value = _literal(text)
    if isinstance(value, int):
        value = [value, value]
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError("expected [height, width]")
    size = [int(v) for v in value]
    if min(size) < 8 or max(size) > 8192:
        raise ValueError(f"size {size} out of range")
    return size


def read_metadata(model: onnx.ModelProto) -> ModelMetadata:
    """Parse the metadata_props of `model`."""
    props = {p.key.strip().lower(): p.value for p in model.metadata_props}
    meta = ModelMetadata()
    for key in NAME_KEYS:
        if key in props and meta.names is None:
            try:
                meta.names = parse_names(props[key])
                meta.notes.append(f"{len(meta.names)} class names from the model's metadata")
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
                meta.problems.append(f"metadata '{key}' ignored ({exc})")
    for key, parse in (("imgsz", _size), ("stride", lambda t: int(float(t)))):
        if key in props:
            try:
                setattr(meta, key, parse(props[key]))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
                meta.problems.append(f"metadata '{key}' ignored ({exc})")
    meta.task = props.get("task", "").strip().lower() or None
    maker = f"{props.get('author', '')} {props.get('description', '')}".lower()
    meta.ultralytics = "ultralytics" in maker or ("names" in props and "stride" in props)
    meta.rt_detr = meta.ultralytics and ("rtdetr" in maker or "rt-detr" in maker)
    if meta.ultralytics:
        meta.notes.append("Ultralytics metadata: letterbox centred, pad 114, RGB, /255")
    return meta
