"""The app's model presets (resources/presets/*.json), matched by file hash or graph signature."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import onnx

from app.core.resources import resources_dir

NEAR_INPUT_NODES = 8  # the stem of the network: what an exporter keeps across re-exports


def load_presets() -> list[dict[str, Any]]:
    presets = []
    for file in sorted((resources_dir() / "presets").glob("*.json")):
        data = json.loads(file.read_text(encoding="utf-8"))
        data["_file"] = file.name
        presets.append(data)
    return presets


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
    tensor names, metadata and doc strings are left out."""
    graph = model.graph
    inits = {i.name: list(i.dims) for i in graph.initializer}
    inputs = [
        (v.name, v.type.tensor_type.elem_type, _dims(v)) for v in graph.input if v.name not in inits
    ]
    outputs = [(v.type.tensor_type.elem_type, _dims(v)) for v in graph.output]
    ops = sorted(Counter(n.op_type for n in graph.node).items())
    reached = {name for name, _, _ in inputs}
    stem = []
    for node in graph.node:  # nodes are stored in topological order
        if len(stem) >= NEAR_INPUT_NODES:
            break
        if any(i in reached for i in node.input):
            reached.update(node.output)
            stem.append((node.op_type, [inits[i] for i in node.input if i in inits]))
    text = json.dumps([inputs, outputs, ops, stem], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def match_preset(
    sha: str,
    inputs: dict[str, list],
    outputs: dict[str, list],
    model: onnx.ModelProto | None = None,
) -> dict | None:
    """The preset for this model, with `_matched_by` saying how: "file hash", "graph
    structure" (a re-export of a known model) or "input/output names" (the weakest)."""
    presets = load_presets()
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
