"""Which variants are stale: built from an older calibration or an older preprocessing.

Each variant's record carries the calibration key and the spec key it was built from
(`built_from`, written by quantize); a variant whose keys are not the workspace's current
ones is stale and is used only after an explicit choice (rebuild, `--allow-stale`, a confirm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.core.errors import UserError
from app.core.model.spec import ModelSpec
from app.core.model.workspace import cache_key
from app.core.safe_json import load_json

if TYPE_CHECKING:
    from app.core.model.workspace import Workspace


def spec_key(spec: ModelSpec) -> str:
    """The key of what a calibrated variant depends on in the spec: model and preprocessing."""
    return cache_key("spec", spec.sha256, spec.preprocess_key())


def built_from(spec: ModelSpec, meta: dict[str, Any]) -> dict[str, Any]:
    """The fields a variant's record gets: the spec key and calibration key it was built from."""
    return {"spec_key": spec_key(spec), "calibration_key": meta.get("calibration")}


def latest_calibration_key(ws: Workspace) -> str | None:
    """The key of the workspace's latest calibration (None before the first one)."""
    try:
        key = load_json(ws.root / "calibration" / "latest.json").get("key")
    except (OSError, ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def stale_reason(meta: dict[str, Any], spec: ModelSpec, latest: str | None) -> str | None:
    """Why the variant of record `meta` is stale, or None. Only calibrated (INT8) variants
    depend on calibration and preprocessing; an FP16 graph is the model's, whatever the spec."""
    calibration = meta.get("calibration_key") or meta.get("calibration")
    if not calibration:
        return None
    if latest and calibration != latest:
        return f"built from calibration {calibration}; the latest is {latest}"
    recorded = meta.get("spec_key")
    if recorded and recorded != spec_key(spec):
        return "built for another preprocessing than the spec now has (calibrate again first)"
    return None


def mark_stale(ws: Workspace, metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`metas` (from `ws.variants()`) with `stale` set: the reason, or None."""
    spec, latest = ws.spec(), latest_calibration_key(ws)
    return [dict(m, stale=stale_reason(m, spec, latest)) for m in metas]


def stale_variants(ws: Workspace, names: list[str]) -> dict[str, str]:
    """Name -> reason for each of `names` that is a stale variant of `ws`."""
    spec, latest = ws.spec(), latest_calibration_key(ws)
    out = {}
    for name in names:
        meta = ws.variant_meta(name) if name != "fp32" else None
        reason = stale_reason(meta, spec, latest) if meta else None
        if reason:
            out[name] = reason
    return out


def refuse_stale(
    ws: Workspace, names: list[str], *, allow: bool, flag: str = "--allow-stale"
) -> list[str]:
    """UserError when any of `names` is stale and `allow` is not set; returns the warnings to
    print when it is (a stale variant is never used silently)."""
    stale = stale_variants(ws, names)
    if stale and not allow:
        lines = "; ".join(f"'{n}' {why}" for n, why in stale.items())
        raise UserError(
            f"stale variant(s) in {ws.root}: {lines}. Run `int8-studio quantize --workspace "
            f"{ws.root}` to rebuild, or pass {flag} to use them anyway"
        )
    return [f"using stale variant '{n}' ({why})" for n, why in stale.items()]
