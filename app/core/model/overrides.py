"""The user's corrections to a model's spec, stored apart from what inspection guessed.

`<workspace>/user.json` holds only the fields the user set (in the Model tab, with CLI flags or
a `--spec` file). Inspection runs again each time a model is opened; these are applied on top,
so a correction is never overwritten by a guess.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from app.core.atomic import write_json
from app.core.errors import UserError
from app.core.model.spec import RESIZE_MODES, ModelSpec
from app.core.safe_json import load_json

USER_FILE = "user.json"
PREPROCESS_FIELDS = ("size", "resize", "color", "scale", "mean", "std")
POSTPROCESS_FIELDS = ("conf", "iou")
FIELDS = (*PREPROCESS_FIELDS, *POSTPROCESS_FIELDS, "labels")


def _numbers(value: Any, n: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == n
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
    )


def _check_field(name: str, value: Any) -> str | None:
    """Why `value` cannot be field `name`, or None when it can."""
    if name == "size":
        ok = _numbers(value, 2) and all(float(v).is_integer() and v >= 8 for v in value)
        return None if ok else "two whole numbers [height, width], at least 8"
    if name == "resize":
        return None if value in RESIZE_MODES else f"one of {', '.join(RESIZE_MODES)}"
    if name == "color":
        return None if value in ("RGB", "BGR") else "RGB or BGR"
    if name in ("mean", "std"):
        ok = _numbers(value, 3) and (name == "mean" or all(v != 0 for v in value))
        return None if ok else "three numbers" + (", none 0" if name == "std" else "")
    if name == "scale" or name in POSTPROCESS_FIELDS:
        ok = _numbers([value], 1) and value > 0 and (name == "scale" or value < 1)
        return None if ok else ("a number above 0" if name == "scale" else "a number in (0, 1)")
    if name == "labels":  # [] (what --write-spec writes for a model without names): none given
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "a list of class names"
    return f"not a field you can set (known: {', '.join(FIELDS)})"


COMMAND_LINE = "the command line"  # a `source` that is not a file


def check_overrides(data: Any, source: str) -> dict[str, Any]:
    """`data` as corrections, every field checked; UserError naming `source` and the field."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a JSON object with some of: {', '.join(FIELDS)}")
    for name, value in data.items():
        why = _check_field(name, value)
        if why:
            fix = "fix the file" if source != COMMAND_LINE else f"fix --{name}"
            raise UserError(f"{source}: '{name}' must be {why} (got {value!r}); {fix}")
    out = {k: v for k, v in data.items() if not (k == "labels" and v == [])}
    if "size" in out:
        out["size"] = [int(v) for v in out["size"]]
    return out


def overrides_path(root: str | Path) -> Path:
    return Path(root) / USER_FILE


def load_overrides(root: str | Path | None) -> dict[str, Any]:
    """The corrections saved in workspace `root` ({} when there are none)."""
    if root is None or not overrides_path(root).is_file():
        return {}
    path = overrides_path(root)
    try:
        data = load_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read your corrections ({exc}); fix or delete it") from exc
    return check_overrides(data, str(path))


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """A `--spec FILE`: JSON of the same fields (what `inspect --write-spec` writes)."""
    try:
        data = load_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the spec file ({exc})") from exc
    return check_overrides(data, str(path))


def save_overrides(root: str | Path, overrides: dict[str, Any]) -> None:
    write_json(overrides_path(root), check_overrides(overrides, str(overrides_path(root))))


def spec_fields(spec: ModelSpec) -> dict[str, Any]:
    """The settable fields of `spec` (what `inspect --write-spec` writes for the user to edit)."""
    pre, post = spec.preprocess, spec.postprocess
    out: dict[str, Any] = {name: getattr(pre, name) for name in PREPROCESS_FIELDS}
    out.update({name: getattr(post, name) for name in POSTPROCESS_FIELDS})
    out["labels"] = list(spec.labels)
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal, numbers up to a form's rounding (a scale of 1/255 shown as 0.003922)."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    return a == b


def changed_fields(old: ModelSpec, new: ModelSpec) -> dict[str, Any]:
    """The settable fields whose value differs between `old` and `new` (the user's edits)."""
    before, after = spec_fields(old), spec_fields(new)
    return {name: after[name] for name in FIELDS if not _same(after[name], before[name])}


def apply_overrides(spec: ModelSpec, overrides: dict[str, Any], source: str) -> ModelSpec:
    """`spec` with the user's fields set on top, a note saying which (from `source`)."""
    if not overrides:
        return spec
    size = overrides.get("size")
    if size and not spec.dynamic_size and list(size) != list(spec.preprocess.size):
        raise UserError(
            f"{source}: size {size[0]}x{size[1]} cannot be set: this model's input is fixed at "
            f"{spec.preprocess.size[0]}x{spec.preprocess.size[1]}; remove 'size'"
        )
    pre = dataclasses.replace(
        spec.preprocess, **{k: v for k, v in overrides.items() if k in PREPROCESS_FIELDS}
    )
    if pre.short_side and "size" in overrides:
        pre.short_side = None  # a size the user chose replaces the per-image short side
    try:
        pre.validate()
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from exc
    post = dataclasses.replace(
        spec.postprocess, **{k: v for k, v in overrides.items() if k in POSTPROCESS_FIELDS}
    )
    notes, problems = list(spec.notes), list(spec.problems)
    labels = spec.labels
    if "labels" in overrides and spec.labels and len(overrides["labels"]) != len(spec.labels):
        problems.append(  # names for another model would label every result wrong
            f"{source}: {len(overrides['labels'])} class names set by you but the model has "
            f"{len(spec.labels)} classes; not used"
        )
        overrides = {k: v for k, v in overrides.items() if k != "labels"}
    elif "labels" in overrides:
        labels = list(overrides["labels"])
    if overrides:
        notes.append(f"set by you ({source}): {', '.join(k for k in FIELDS if k in overrides)}")
    return dataclasses.replace(
        spec, preprocess=pre, postprocess=post, labels=labels, notes=notes, problems=problems
    )


def corrected_spec(
    spec: ModelSpec, root: str | Path | None, extra: dict[str, Any] | None = None
) -> tuple[ModelSpec, dict[str, Any]]:
    """`spec` (freshly inspected) with the corrections saved in workspace `root`, then `extra`
    (this command's flags) on top; returns the spec and the merged corrections."""
    merged = {**load_overrides(root), **(extra or {})}
    if not merged:
        return spec, merged
    where = str(overrides_path(root)) if root is not None else "your settings"
    return apply_overrides(spec, merged, USER_FILE if root is not None else where), merged
