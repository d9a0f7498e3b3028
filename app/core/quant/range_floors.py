"""Floors under the calibrated ranges of tensors whose readers flatten everything below some
value, for the ort-cpu layout, whose quantized convs write uint8 outputs (QLinearConv) on the
calibrated range of what they write. Two cases, both of a conv output that nothing else reads:

**Read only by a SiLU.** ONNX Runtime's Percentile calibration is symmetric: a conv's
pre-activation range comes out as [-t, t] (clamped to the values seen), so half of the codes of a
conv that feeds a SiLU describe inputs below -t/2, where SiLU(x) = x * sigmoid(x) is within a few
hundredths of 0. On YOLOX-Nano 97 of 104 such ranges are within 2% of symmetric, [-6.4, 6.4] to
[-93, 93]. That conv output is the coarsest rounding of the ort-cpu graph: with YOLOX-Nano's
conv outputs left float (the rest as built), unseen video agreement with FP32 rises 83.1 -> 91.8
and pool agreement 90.7 -> 95.1 (issue-17 protocol, 2026-12-04). Values below SILU_FLOOR are
clipped to it, which moves SiLU(x) by at most |SiLU(-8)| = 0.0027, a tenth of a step of a
typical SiLU output grid ([-0.28, 7] in 255 steps). A clip's error has one sign wherever it
happens, so it adds up in the next conv instead of averaging out as rounding does: the floor
sits far lower than where its error would equal one rounding step (about -5.5 here). Measured
on the tuning rows of the issue-17 protocol (YOLOX-Nano, 2-core Zen 5 EPYC with VNNI; pool
agreement / unseen video agreement, which was not chosen on): no floor 90.7 / 83.1; -3
83.5 / 71.3; -5 90.5 / 86.6; -6 90.9 / 87.6; -7 92.8 / 87.2; -8 92.8 / 88.2; -10 91.0 / 87.0;
-12 92.6 / 84.0. A floor of -8 clips 62 of YOLOX-Nano's 104 ranges.

**Added to another tensor, then Relu (or Clip).** relu(t + u) is 0 whenever t <= -max(u): a
residual block's conv output below minus the skip branch's calibrated maximum carries nothing,
so its floor is that value (Clip: its minimum minus that maximum). This one is exact: no value
inside the calibrated ranges changes the block's output. On the HaGRID crop classifier the
conv before its residual Add spans [-75, 15] while the skip branch tops out at 0.7: floored at
-0.7, its logit SQNR against FP32 rises 25.8 -> 36.7 dB and top-1 agreement 85.7% -> 94.0%
(ResNet-8, 3 inputs floored: 27.7 -> 28.0 dB; `app.benchmarks.int8_classifiers`, 2026-12-05).

No ONNX Runtime calibrator knows which op reads a tensor, so this is written here. The TensorRT
and openvino layouts leave a conv's output float up to the next conv's input, and the TensorRT
calibration table keeps the calibrated ranges: only the ranges `quantize_static` is given for
the ort-cpu graph change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from app.core.quant.graph_rules import consumers_of
from app.core.quant.ranges import ranges_of
from app.core.quant.silu import silu_pairs

log = logging.getLogger(__name__)
SILU_FLOOR = -8.0  # SiLU(-8) = -0.0027
FLOORS_VERSION = 2  # 2: an Add of a constant before a Relu / Clip floored too


def silu_only_inputs(model: onnx.ModelProto) -> list[str]:
    """Tensors whose every reader is the Sigmoid or the Mul of one SiLU (`silu.silu_pairs`)."""
    consumers = consumers_of(model)
    outputs = {o.name for o in model.graph.output}
    found = []
    for sig, mul in silu_pairs(model):
        x = sig.input[0]
        readers = {id(n) for n in consumers.get(x, [])}
        if x not in outputs and readers == {id(sig), id(mul)}:
            found.append(x)
    return sorted(set(found))


def _clip_minimum(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> float | None:
    """Below what a Relu / Clip flattens its input (None: no constant minimum)."""
    if node.op_type == "Relu":
        return 0.0
    if node.op_type != "Clip":
        return None
    for attr in node.attribute:  # opset < 11
        if attr.name == "min":
            return float(attr.f)
    if len(node.input) > 1 and node.input[1] in inits:
        return float(numpy_helper.to_array(inits[node.input[1]]).ravel()[0])
    return None


def add_relu_floors(
    model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """{tensor: floor} for each input t of an Add read only by one Relu / Clip (minimum m) whose
    other input u has a calibrated range or is a constant (a bias added before the activation):
    below m - max(u), t only ever gives m after the Add."""
    consumers = consumers_of(model)
    outputs = {o.name for o in model.graph.output}
    inits = {i.name: i for i in model.graph.initializer}  # decoded only where a floor needs it
    out: dict[str, float] = {}
    for add in model.graph.node:
        if add.op_type != "Add" or len(add.input) != 2 or add.output[0] in outputs:
            continue
        readers = consumers.get(add.output[0], [])
        if len(readers) != 1:
            continue
        minimum = _clip_minimum(readers[0], inits)
        if minimum is None:
            continue
        for t, u in (add.input, reversed(add.input)):
            if t in inits or t in outputs or len(consumers.get(t, [])) != 1:
                continue
            if u in inits:  # every value of the constant is known: its largest is exact
                highest = float(np.max(numpy_helper.to_array(inits[u]), initial=-np.inf))
            elif u in ranges:
                highest = ranges[u][1]
            else:
                continue
            if np.isfinite(highest):
                out[t] = minimum - highest
    return out


def floored(ranges: dict[str, tuple[float, float]], floors: dict[str, float]) -> dict[str, float]:
    """{tensor: its new lowest} for each floor that lies inside its tensor's calibrated range (a
    range wholly below stays: it carries no value above the floor to keep)."""
    out = {}
    for t, floor in floors.items():
        if t in ranges:
            lo, hi = ranges[t]
            if lo < floor < hi:
                out[t] = floor
    return out


def floor_ranges(
    model: onnx.ModelProto, ranges_path: Path, workdir: Path
) -> tuple[Path, dict[str, Any]]:
    """A ranges file (in `workdir`) with both floors applied, and what was done; `ranges_path`
    itself when no range reaches below its floor."""
    from onnxruntime.quantization.calibrate import (
        TensorData,
        TensorsData,
        load_tensors_data,
        save_tensors_data,
    )

    data = load_tensors_data(ranges_path)
    ranges = ranges_of(data)
    silu = silu_only_inputs(model)
    by_silu = floored(ranges, dict.fromkeys(silu, SILU_FLOOR))
    by_add = floored(ranges, add_relu_floors(model, ranges))
    changed = {**by_silu, **by_add}
    info: dict[str, Any] = {
        "version": FLOORS_VERSION,
        "silu_floor": SILU_FLOOR,
        "silu_inputs": len(silu),
        "silu_floored": len(by_silu),
        "add_relu_floored": len(by_add),
    }
    if not changed:
        return ranges_path, info
    merged = dict(data.items())
    for name, lo in changed.items():
        merged[name] = TensorData(
            lowest=np.array(lo, np.float32), highest=np.array(ranges[name][1], np.float32)
        )
    out = workdir / "ranges_floored.json"
    save_tensors_data(TensorsData(data.calibration_method, merged), out)
    parts = [f"{len(by_silu)} of {len(silu)} SiLU inputs at {SILU_FLOOR:g}"] if by_silu else []
    if by_add:
        parts.append(f"{len(by_add)} residual-add inputs at minus the other input's maximum")
    log.info("ranges floored where the next ops flatten low values: %s", "; ".join(parts))
    return out, info
