"""A floor under the calibrated range of each tensor that only a SiLU reads, for the ort-cpu
layout, whose quantized convs write uint8 outputs (QLinearConv) that the SiLU then reads.

ONNX Runtime's Percentile calibration is symmetric: a conv's pre-activation range comes out as
[-t, t] (clamped to the values seen), so half of the uint8 codes of a conv that feeds a SiLU
describe inputs below -t/2, where SiLU(x) = x * sigmoid(x) is within a few hundredths of 0. On
YOLOX-Nano 97 of 104 such ranges are within 2% of symmetric, [-6.4, 6.4] to [-93, 93]. Taking
the calibration as is, the conv output is the coarsest rounding of the ort-cpu graph: with its
conv outputs left float (the rest as built), unseen video agreement with FP32 rises 83.1 -> 91.8
and pool agreement 90.7 -> 95.1 (issue-17 protocol, 2026-12-04).

The floor clips x below FLOOR to FLOOR, which moves SiLU(x) by at most |SiLU(FLOOR)| = 0.0027,
a tenth of a step of a typical SiLU output grid ([-0.28, 7] in 255 steps). A clip's error has
one sign wherever it happens, so it adds up in the next conv instead of averaging out as
rounding does: the floor must sit far lower than the point where the clip error equals one
rounding step (about -5.5 here). Measured on the tuning rows of the issue-17 protocol (YOLOX-Nano,
2-core Zen 5 EPYC with VNNI; pool agreement / unseen video agreement, which was not chosen on):
no floor 90.7 / 83.1; -3 83.5 / 71.3; -5 90.5 / 86.6; -6 90.9 / 87.6; -7 92.8 / 87.2;
-8 92.8 / 88.2; -10 91.0 / 87.0; -12 92.6 / 84.0. A floor of -8 clips 62 of the 104 ranges.

No ONNX Runtime calibrator knows which op reads a tensor, so this is written here. The
TensorRT and openvino layouts leave a conv's output float up to the next conv's input, and the
TensorRT calibration table keeps the calibrated ranges: only the ranges `quantize_static` is
given for the ort-cpu graph change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from app.core.quant.graph_rules import consumers_of
from app.core.quant.silu import silu_pairs

log = logging.getLogger(__name__)
FLOOR = -8.0  # SiLU(-8) = -0.0027
FLOOR_VERSION = 1


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


def floored(ranges: dict[str, tuple[float, float]], tensors: list[str]) -> dict[str, float]:
    """{tensor: its new lowest} for each of `tensors` whose calibrated range reaches below
    FLOOR and above it (a range wholly below stays: it carries no positive value to keep)."""
    out = {}
    for t in tensors:
        if t in ranges:
            lo, hi = ranges[t]
            if lo < FLOOR < hi:
                out[t] = FLOOR
    return out


def floor_silu_inputs(
    model: onnx.ModelProto, ranges_path: Path, workdir: Path
) -> tuple[Path, dict[str, Any]]:
    """A ranges file (in `workdir`) with the floor under every SiLU-only input, and what was
    done; `ranges_path` itself when nothing reaches below the floor."""
    from onnxruntime.quantization.calibrate import (
        TensorData,
        TensorsData,
        load_tensors_data,
        save_tensors_data,
    )

    data = load_tensors_data(ranges_path)
    ranges = {
        name: (float(np.asarray(t.range_value[0])), float(np.asarray(t.range_value[1])))
        for name, t in data.items()
    }
    tensors = silu_only_inputs(model)
    changed = floored(ranges, tensors)
    info: dict[str, Any] = {
        "version": FLOOR_VERSION,
        "floor": FLOOR,
        "silu_inputs": len(tensors),
        "floored": len(changed),
    }
    if not changed:
        return ranges_path, info
    merged = dict(data.items())
    for name, lo in changed.items():
        merged[name] = TensorData(
            lowest=np.array(lo, np.float32), highest=np.array(ranges[name][1], np.float32)
        )
    out = workdir / "ranges_silu_floor.json"
    save_tensors_data(TensorsData(data.calibration_method, merged), out)
    log.info("SiLU inputs: %d of %d ranges floored at %g", len(changed), len(tensors), FLOOR)
    return out, info
