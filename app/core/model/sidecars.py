"""Sidecar files that travel with a model: class lists, colormaps, normalisation stats, presets.

Every file is parsed as plain JSON or text (never unpickled, never evaluated) and checked against a
small schema before use; a malformed sidecar is reported by name and ignored, never fatal.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import UserError
from app.core.model.label_names import indexed_labels
from app.core.model.spec import ModelSpec, palette_color
from app.core.safe_json import load_json

MAX_SIDECAR_BYTES = 4 * 1024 * 1024  # a class list is kilobytes; refuse anything absurd


@dataclass
class Sidecars:
    """What the sidecars of one model say; `notes` records where each fact came from."""

    labels: list[str] | None = None
    colors: list[tuple[int, int, int]] | None = None  # RGB 0..255, same order as labels
    mean: list[float] | None = None
    std: list[float] | None = None
    labels_file: str | None = None  # the file the labels came from (checked against the model)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _load_json(path: Path) -> Any:
    return load_json(path, expect=object, max_bytes=MAX_SIDECAR_BYTES)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_num_list(value: Any, n: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def parse_colormap(data: Any) -> tuple[list[str], list[tuple[int, int, int]]]:
    """The tutorials' `{"items": [{"label": str, "color": [r, g, b] in 0..1}]}`."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError('expected {"items": [{"label": ..., "color": [r, g, b]}]}')
    labels, colors = [], []
    for i, item in enumerate(data["items"]):
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise ValueError(f"item {i} has no string 'label'")
        color = item.get("color", [0.5, 0.5, 0.5])
        if not _is_num_list(color, 3):
            raise ValueError(f"item {i} 'color' is not three numbers")
        # The tutorials write 0..1 floats; accept 0..255 too.
        scale = 255.0 if max(color) <= 1.0 else 1.0
        labels.append(item["label"])
        colors.append(tuple(int(round(min(255.0, max(0.0, c * scale)))) for c in color))
    return labels, colors


def parse_classes(data: Any) -> list[str]:
    """The tutorials' `{"classes": [str, ...]}` (or a bare list)."""
    classes = data.get("classes") if isinstance(data, dict) else data
    if not _is_str_list(classes) or not classes:
        raise ValueError('expected {"classes": ["name", ...]}')
    return classes


def parse_norm_stats(data: Any) -> tuple[list[float], list[float]]:
    """The tutorials' `{"mean": [3 floats], "std_dev": [3 floats]}` in 0..1 pixel units."""
    if not isinstance(data, dict):
        raise ValueError('expected {"mean": [..3], "std_dev": [..3]}')
    mean, std = data.get("mean"), data.get("std_dev", data.get("std"))
    if not _is_num_list(mean, 3) or not _is_num_list(std, 3):
        raise ValueError('expected {"mean": [..3], "std_dev": [..3]}')
    if any(s == 0 for s in std):
        raise ValueError("std_dev contains 0")
    return [float(m) for m in mean], [float(s) for s in std]


def parse_labels_txt(text: str) -> list[str]:
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise ValueError("no labels in file")
    return labels


def _priority(path: Path, model_file: Path) -> tuple[bool, bool, str]:
    """Files named after the model first (`yolox_nano_classes.json` for `yolox_nano.onnx`
    beats a folder's `labels.txt`), then colormaps (labels with colours), then by name."""
    name = path.name.lower()
    return (not name.startswith(model_file.stem.lower()), "colormap" not in name, name)


def read_sidecars(folder: Path, model_file: Path) -> Sidecars:
    """Read every recognised sidecar in `folder` (the model's checkpoint folder)."""
    found = Sidecars()
    entries = sorted(
        (p for p in folder.iterdir() if p.is_file() and p != model_file),
        key=lambda p: _priority(p, model_file),
    )
    # A folder may hold several models (the HaGRID detector and its classifier); a sidecar named
    # after another model belongs to that one.
    others = [p.stem.lower() for p in entries if p.suffix.lower() == ".onnx"]
    for path in entries:
        name = path.name.lower()
        if any(name.startswith(stem) for stem in others) and not name.startswith(
            model_file.stem.lower()
        ):
            continue
        try:
            if name.endswith("colormap.json") and found.labels is None:
                labels, colors = parse_colormap(_load_json(path))
                found.labels, found.colors = labels, colors
                found.labels_file = str(path)
                found.notes.append(f"labels and colours from {path.name}")
            elif name.endswith("classes.json") and found.labels is None:
                found.labels = parse_classes(_load_json(path))
                found.labels_file = str(path)
                found.notes.append(f"labels from {path.name}")
            elif name == "norm_stats.json":
                found.mean, found.std = parse_norm_stats(_load_json(path))
                found.notes.append(f"mean/std from {path.name}")
            elif name.endswith(".txt") and ("label" in name or "class" in name):
                if found.labels is None:
                    if path.stat().st_size > MAX_SIDECAR_BYTES:
                        raise ValueError("file is larger than 4 MiB")
                    found.labels = parse_labels_txt(path.read_text(encoding="utf-8"))
                    found.labels_file = str(path)
                    found.notes.append(f"labels from {path.name}")
        except (ValueError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            found.problems.append(f"{path}: ignored ({exc})")
    return found


def drop_mismatched_labels(spec: ModelSpec, found: Sidecars) -> ModelSpec:
    """`spec` without the sidecar's labels when their count is not the model's class count: a
    list for another model (2 names for a 10-class model) is not used, and the spec says which
    file and why. Labels from metadata or presets (which win over sidecars) are left alone."""
    if not found.labels or not found.labels_file:
        return spec
    names = indexed_labels(found.labels)
    n_classes = len(spec.labels)
    used = spec.labels[: min(len(names), n_classes)] == names[:n_classes]
    if len(names) == n_classes or not used or not n_classes:
        return spec
    why = (
        f"{found.labels_file}: not used: it has {len(names)} names but the model has "
        f"{n_classes} classes (a list for another model?); classes are shown as numbers. "
        "Load the model's own label list (Model tab, or --class-names)"
    )
    problems = [p for p in spec.problems if not p.startswith("the label list has")] + [why]
    notes = [n for n in spec.notes if Path(found.labels_file).name not in n]
    labels = [f"class {i}" for i in range(n_classes)]
    colors = [list(palette_color(i)[::-1]) for i in range(n_classes)]
    return dataclasses.replace(spec, labels=labels, colors=colors, problems=problems, notes=notes)


def read_class_names(path: str | Path) -> list[str]:
    """A class list the user chose: .txt (one name a line), JSON {"classes": [...]}, a bare JSON
    list or a colormap; UserError naming the file when it is none of these."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            data = _load_json(path)
            if isinstance(data, dict) and "items" in data:
                return parse_colormap(data)[0]
            return parse_classes(data)
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise ValueError("file is larger than 4 MiB")
        return indexed_labels(parse_labels_txt(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the class names ({exc.strerror or exc})") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{path}: not a class list ({exc}); give a .txt with one name a line or JSON "
            '{"classes": [...]}'
        ) from exc
