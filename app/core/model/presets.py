"""The app's model presets (resources/presets/*.json), matched by file hash or graph signature."""

from __future__ import annotations

import json
from typing import Any

from app.core.resources import resources_dir


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


def match_preset(sha: str, inputs: dict[str, list], outputs: dict[str, list]) -> dict | None:
    presets = load_presets()
    for preset in presets:
        if sha in preset.get("match", {}).get("sha256", []):
            return preset
    for preset in presets:
        sig = preset.get("match", {}).get("signature")
        if sig and _signature_matches(sig, inputs, outputs):
            return preset
    return None
