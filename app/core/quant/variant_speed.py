"""`quantize`'s timing step: every variant it just built for a CPU target, timed against FP32 on
this machine's runtime (`speed`), the answer kept in the variant's record.

An INT8 graph whose SiLUs run fused in float is built a second time with them quantized, and the
faster form kept (`silu_choice`); `fp32-prep` computes what FP32 does, so its timing is all that
can make it worth using (`prepared_fp32`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.defaults import PREPARED_FP32
from app.core.errors import CancelToken
from app.core.model.workspace import Workspace
from app.core.openvino_session import openvino_installed
from app.core.quant.silu_choice import choose_silu_form
from app.core.quant.speed import measure_int8_speed
from app.core.quant.targets import SPEED_TARGETS, VARIANT_SUFFIX
from app.core.timing import SAME_SPEED_BAND

log = logging.getLogger(__name__)


def time_built_variants(
    ws: Workspace,
    out: list[dict[str, Any]],
    target: str,
    int8_quantized: Callable[[Path], dict[str, Any]] | None,
    placement: str,
    progress: Callable[[float, str], None],
    cancel: CancelToken,
) -> None:
    """Time each of `out` (quantize's records, updated in place) against FP32 on `target`'s CPU
    runtime. `int8_quantized`: builds the INT8 graph with its SiLUs quantized (`silu_choice`)."""
    backend = SPEED_TARGETS[target]
    if backend == "openvino-cpu" and not openvino_installed():
        log.info("%s not timed: OpenVINO is not installed", target)
        return
    spec = ws.spec()
    source, size = Path(spec.path), spec.preprocess.size
    timed = [  # the prepared FP32 and INT8 variants, in order
        (i, e)
        for i, e in enumerate(out)
        if not e.get("skipped") and (e["name"] == PREPARED_FP32 or e.get("precision") == "int8")
    ]
    for k, (i, entry) in enumerate(timed):
        at = k / len(timed)  # on the bar: the share timed before this one
        name = entry["name"]
        cancel.check()
        if name == PREPARED_FP32:  # exact: only its speed can make it worth using
            progress(at, f"timing {name} against fp32 on this CPU ({backend})")
            _record_speed(ws, entry, source, size, backend, exact=True)
            continue
        fused = entry.get("silus_fused") and placement == "default"
        if fused and not entry.get("reused") and int8_quantized is not None:
            progress(at, f"timing {name}'s two SiLU forms against fp32 on this CPU")
            record = choose_silu_form(ws, name, source, size, int8_quantized, cancel)
            out[i] = {**record, "reused": False}
            continue
        progress(at, f"timing {name} against fp32 on this CPU ({backend})")
        _record_speed(ws, entry, source, size, backend)


def _record_speed(
    ws: Workspace,
    entry: dict[str, Any],
    source: Path,
    size: list[int] | None,
    backend: str,
    *,
    exact: bool = False,
) -> None:
    """Time the variant of `entry` against FP32 and keep the result in `entry` and in its record
    (the latest timing, as `silu_choice` records its own)."""
    name = entry["name"]
    entry["speed"] = measure_int8_speed(
        source, ws.variant_path(name), size, name=name, backend=backend, exact=exact
    )
    recorded = ws.variant_meta(name)
    if recorded is not None:
        ws.record_variant(name, {**recorded, "speed": entry["speed"]})


def prepared_beats_int8(metas: list[dict[str, Any]]) -> str | None:
    """A line when `fp32-prep` was timed faster than FP32 and an INT8 variant was not clearly
    faster than it (each timed against FP32 on this CPU): then the exact variant is the one to
    run unless an evaluation says otherwise. None otherwise."""
    timed = {m.get("name"): m["speed"] for m in metas if m.get("speed") and not m.get("skipped")}
    prep = timed.get(PREPARED_FP32)
    if not prep or not prep.get("faster"):
        return None
    slow = [
        f"{name} {speed['ratio']:.2f}x"
        for name, speed in timed.items()
        if str(name).startswith("int8") and speed["ratio"] > prep["ratio"] * (1 - SAME_SPEED_BAND)
    ]
    if not slow:
        return None
    return (
        f"{', '.join(slow)} against {PREPARED_FP32} {prep['ratio']:.2f}x fp32's latency: INT8 is "
        f"not clearly faster than {PREPARED_FP32}, which gives FP32's outputs; use "
        f"{PREPARED_FP32} unless `evaluate` or `bench` finds otherwise"
    )


def openvino_alternative(metas: list[dict[str, Any]], variant_names: list[str]) -> str | None:
    """A line when an INT8 variant timed on ort-cpu here was not clearly faster than FP32,
    OpenVINO is installed and none of `variant_names` (the workspace's) is made for it: OpenVINO's
    own INT8 kernels can pay where ONNX Runtime's do not (YOLOX-Nano on a 2-core Xeon with AMX:
    int8-ov at 0.78x OpenVINO's FP32, int8 at 1.02x ONNX Runtime's). How to build it depends on
    the front end, which adds it. None otherwise."""
    slow = [
        str(m.get("name"))
        for m in metas
        if m.get("precision") == "int8"
        and (m.get("speed") or {}).get("backend") == "ort-cpu"
        and not m["speed"].get("faster")
    ]
    made_for_openvino = any(n.endswith(VARIANT_SUFFIX["openvino"]) for n in variant_names)
    if not slow or made_for_openvino or not openvino_installed():
        return None
    return (
        f"{slow[0]} is not faster than fp32 on ONNX Runtime here, and OpenVINO is installed: its "
        "own INT8 kernels can pay where ONNX Runtime's do not; build int8-ov, the variant made "
        "for it, and compare both backends"
    )
