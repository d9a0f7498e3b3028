"""Which SiLU form the ort-cpu INT8 graph keeps, measured on this CPU.

A SiLU can run float, fused into one QuickGelu between DQ and Q (the default, `silu`: one
rounding), or quantized as QLinearSigmoid + QLinearMul (placement qlinear-silu: two roundings,
uint8 data throughout). Which is faster depends on the CPU. YOLOX-Nano INT8 against FP32's
latency, 1 / 2 threads (ORT 1.31.1, `app.benchmarks.int8_speed`, 2026-12-04):
  * 2-core Zen 5 EPYC with VNNI: fused 1.02x / 1.13x, quantized 1.16x / 1.38x;
  * 16-core Xeon with VNNI and AMX: fused 1.12x / 1.20x, quantized 1.09x / 1.12x (profiled at
    1 thread, its DequantizeLinear + QuantizeLinear cost 4.0 ms per run against 1.8 on the
    EPYC, QLinearSigmoid + QLinearMul 5.0 against 4.1).
So `quantize`, when it times INT8 on this machine, also builds the quantized form and times the
two in the same turns; the quantized form replaces the fused one only when it is faster by more
than SAME_SPEED_BAND, since the fused one is the more exact (YOLOX-Nano on coco-val-dev64:
mAP50-95 35.73 against 35.12; FP32 35.90).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.errors import CancelToken
from app.core.model.workspace import Workspace
from app.core.quant.speed import measure_int8_speed, speed_entry
from app.core.timing import SAME_SPEED_BAND

QUANTIZED = "qlinear-silu"  # the placement of the quantized form (`placements`)


def choose_silu_form(
    ws: Workspace,
    name: str,
    source: Path,
    size: list[int] | None,
    build_quantized: Callable[[Path], dict[str, Any]],
    cancel: CancelToken,
) -> dict[str, Any]:
    """Time variant `name` (SiLUs fused) against its quantized-SiLU form, built by
    `build_quantized(path)`, and FP32; keep the faster form under `name` (see module doc).
    Returns the variant's updated record, with "speed" (the kept form against FP32) and
    "silu_form" (the timings and the choice)."""
    path = ws.variant_path(name)
    meta = dict(ws.variant_meta(name) or {})
    with tempfile.TemporaryDirectory(
        prefix=f".{name}.silu.", suffix=".part", dir=path.parent
    ) as tmp:
        alt = Path(tmp) / f"{name}-{QUANTIZED}.onnx"
        alt_meta = build_quantized(alt)
        cancel.check()
        speed = measure_int8_speed(source, path, size, name=name, others={QUANTIZED: alt})
        fused_ms, quantized_ms = speed["int8_p50_ms"], speed.pop("others_p50_ms")[QUANTIZED]
        keep_quantized = quantized_ms < fused_ms * (1.0 - SAME_SPEED_BAND)
        form = {
            "chosen": "quantized" if keep_quantized else "fused",
            "fused_p50_ms": fused_ms,
            "quantized_p50_ms": quantized_ms,
            "rule": f"quantized only when faster by more than {SAME_SPEED_BAND:.0%}: the fused "
            "form rounds once, the quantized twice",
        }
        cancel.check()
        if keep_quantized:
            # the record is rewritten after the graph: a stop in between leaves a graph whose
            # hash no longer matches its record, which is rebuilt, never trusted
            os.replace(alt, path)
            meta.update(alt_meta)
            speed = speed_entry(speed["fp32_p50_ms"], quantized_ms, speed["runs"], name)
    meta.update(silu_form=form, speed=speed)
    ws.record_variant(name, meta)
    return ws.variant_meta(name) or meta


def silu_form_line(meta: dict[str, Any]) -> str | None:
    """One line on the SiLU form a variant kept and why, for the CLI; None when not measured."""
    form = meta.get("silu_form")
    if not form:
        return None
    return (
        f"{meta.get('name', 'int8')}: SiLUs {form['chosen']} (timed when built: fused float "
        f"{form['fused_p50_ms']:.2f} ms, quantized {form['quantized_p50_ms']:.2f} ms "
        "per run on this CPU, 1 thread; quantized only when faster by more than "
        f"{SAME_SPEED_BAND:.0%})"
    )
