"""Model presets, matched by file hash or graph signature: the user's own (JSON files in
`user_presets_dir()`, which win) and the app's (resources/presets/*.json).

A preset says what inspection cannot guess for one model: its decoder, preprocessing, labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import onnx

from app.core.errors import UserError
from app.core.model.spec import DECODERS, Postprocess, Preprocess
from app.core.resources import resources_dir

NEAR_INPUT_NODES = 8  # the stem of the network: what an exporter keeps across re-exports
PASS_THROUGH = {"Cast", "Identity"}  # left out of the structure signature
PRESETS_ENV = "INT8_STUDIO_PRESETS"  # another folder of user presets (the tests use an empty one)
TOP_KEYS = {"name", "match", "task", "preprocess", "postprocess", "labels", "labels_fallback"}
TOP_KEYS |= {"ignore_norm_stats", "comment"}


def user_presets_dir() -> Path:
    """Where the user's own presets live: $INT8_STUDIO_PRESETS, else the user config dir."""
    override = os.environ.get(PRESETS_ENV)
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("int8-studio", appauthor=False)) / "presets"


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _kind(default: Any) -> str | None:
    """What a field holds, judged by its default ("a number", "true or false", ...)."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list):
        return "a list of numbers"
    if isinstance(default, dict):
        return "an object of strings"
    return None  # None by default (short_side): checked where it is used


def _is_kind(value: Any, kind: str) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if kind == "true or false":
        return isinstance(value, bool)
    if kind == "a number":
        return number(value)
    if kind == "a string":
        return isinstance(value, str)
    if kind == "a list of numbers":
        return isinstance(value, list) and all(number(v) for v in value)
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def preset_problem(data: Any) -> str | None:
    """Why `data` cannot be a preset, or None when it can."""
    if not isinstance(data, dict):
        return "expected a JSON object"
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        return f"unknown keys {unknown} (known: {', '.join(sorted(TOP_KEYS))})"
    match = data.get("match")
    if not isinstance(match, dict) or not set(match) & {"sha256", "structure", "signature"}:
        return '"match" needs "sha256" (the model file\'s hash) or "structure"'
    for key, cls in (("preprocess", Preprocess), ("postprocess", Postprocess)):
        part = data.get(key, {})
        if not isinstance(part, dict) or set(part) - _fields(cls):
            return f'"{key}" may only set {", ".join(sorted(_fields(cls)))}'
        defaults = cls()
        for name, value in part.items():
            want = _kind(getattr(defaults, name))
            if want and not _is_kind(value, want):
                return f'"{key}.{name}" must be {want} (got {value!r})'
    decoder = data.get("postprocess", {}).get("decoder")
    if decoder is not None and decoder not in DECODERS:
        return f'decoder "{decoder}" is not one of {", ".join(DECODERS)}'
    if data.get("task", "detection") not in ("detection", "classification"):
        return '"task" must be "detection" or "classification"'
    return None


def _read(file: Path, label: str) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{file}: not a readable preset JSON ({exc}); fix or remove it") from exc
    why = preset_problem(data)
    if why:
        raise UserError(f"{file}: not a valid preset: {why}; fix or remove it")
    data.setdefault("name", file.stem)
    decoder = data.get("postprocess", {}).get("decoder")
    if decoder and "task" not in data:  # the decoder says which
        data["task"] = "classification" if decoder == "classifier" else "detection"
    data["_file"] = label
    return data


def load_presets() -> tuple[list[dict[str, Any]], list[str]]:
    """(the user's presets, first so they win, then the app's; why each unusable file was
    skipped). A broken preset is reported, not fatal: it must not stop every other model."""
    presets, problems = [], []
    user = user_presets_dir()
    try:
        # iterdir, not glob: glob passes over a folder it may not list without a word
        found = sorted(f for f in user.iterdir() if f.suffix == ".json") if user.is_dir() else []
        files = [(f, str(f)) for f in found]
    except OSError as exc:  # e.g. a folder this user may not read: its presets are not used
        files = []
        problems.append(
            f"{user}: cannot read your presets folder ({exc.strerror or exc}); its presets are "
            "not used: fix its permissions"
        )
    files += [(f, f.name) for f in sorted((resources_dir() / "presets").glob("*.json"))]
    for file, label in files:
        try:
            presets.append(_read(file, label))
        except UserError as exc:
            problems.append(f"{exc} (skipped)")
    return presets, problems


def _signature_matches(
    sig: dict[str, Any], inputs: dict[str, list], outputs: dict[str, list]
) -> bool:
    for name, shape in sig.get("inputs", {}).items():
        got = inputs.get(name)
        if got is None or len(got) != len(shape):
            return False
        if any(s is not None and g != s for s, g in zip(shape, got)):
            return False
    for name in sig.get("outputs", []):
        if name not in outputs:
            return False
    min_last = sig.get("output_last_dim_min")
    if min_last is not None:
        lasts = [s[-1] for s in outputs.values() if s and isinstance(s[-1], int)]
        if not lasts or max(lasts) < min_last:
            return False
    return True


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    """Fixed dims as numbers, symbolic ones as '?' (exporters name them differently)."""
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else "?"
        for d in value_info.type.tensor_type.shape.dim
    ]


def structure_signature(model: onnx.ModelProto) -> str:
    """A digest of what a re-export of the same network keeps while its file hash changes:
    the image inputs (name, type, shape), the outputs' types and shapes, how many nodes of each
    op type, and the op types and weight shapes of the first nodes after the input. Node and
    tensor names, metadata and doc strings are left out, and so are Cast and Identity nodes:
    converters and optimisers add and remove them without changing the network (an FP16
    conversion widened back by `adapt` has two Casts more than the export it came from)."""
    graph = model.graph
    inits = {i.name: list(i.dims) for i in graph.initializer}
    inputs = [
        (v.name, v.type.tensor_type.elem_type, _dims(v)) for v in graph.input if v.name not in inits
    ]
    outputs = [(v.type.tensor_type.elem_type, _dims(v)) for v in graph.output]
    ops = sorted(Counter(n.op_type for n in graph.node if n.op_type not in PASS_THROUGH).items())
    reached = {name for name, _, _ in inputs}
    stem = []
    for node in graph.node:  # nodes are stored in topological order
        if len(stem) >= NEAR_INPUT_NODES:
            break
        if any(i in reached for i in node.input):
            reached.update(node.output)
            if node.op_type not in PASS_THROUGH:
                stem.append((node.op_type, [inits[i] for i in node.input if i in inits]))
    text = json.dumps([inputs, outputs, ops, stem], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def match_preset(
    sha: str,
    inputs: dict[str, list],
    outputs: dict[str, list],
    model: onnx.ModelProto | None = None,
) -> tuple[dict | None, list[str]]:
    """(the preset for this model, with `_matched_by` saying how: "file hash", "graph
    structure" (a re-export of a known model) or "input/output names" (the weakest); the
    preset files skipped as unusable)."""
    presets, problems = load_presets()
    return _match(presets, sha, inputs, outputs, model), problems


def _match(
    presets: list[dict[str, Any]],
    sha: str,
    inputs: dict[str, list],
    outputs: dict[str, list],
    model: onnx.ModelProto | None,
) -> dict | None:
    for preset in presets:
        if sha in preset.get("match", {}).get("sha256", []):
            return preset | {"_matched_by": "file hash"}
    structure = structure_signature(model) if model is not None else None
    for preset in presets:
        if structure and structure in preset.get("match", {}).get("structure", []):
            return preset | {"_matched_by": "graph structure"}
    for preset in presets:
        sig = preset.get("match", {}).get("signature")
        if sig and _signature_matches(sig, inputs, outputs):
            return preset | {"_matched_by": "input/output names"}
    return None
