"""Average pools that stay float in the ort-cpu INT8 graph: those whose output range is much
narrower than their input's.

ONNX Runtime's Q/DQ quantizer gives an AveragePool's output its input's grid (a "direct 8-bit"
op, run as QLinearAveragePool). A pool over many positions, such as a classifier's global pool,
averages its input's rare peaks away: the output then uses a small part of that grid, and so
does everything after it up to the classifier (Flatten and Reshape share it too). Kept float,
the pool's consumer quantizes its input on that tensor's own calibrated range instead.
Measured with `app.benchmarks.int8_classifiers` (ort-cpu default recipe, 64 calibration images,
2-core Zen 5 EPYC with VNNI, 2026-12-05; int8_classifiers_epyc_vnni_2026-12-05.txt), logit SQNR
against FP32 / top-1 agreement with FP32 on images nothing was calibrated on, pools quantized ->
float:
  * HaGRID crop classifier (16x16 pool, output range 0.35 against 5.58 in): 19.9 dB / 72.9% ->
    36.7 dB / 94.0% (before the residual-add floor of `range_floors`: 22.1 / 63.2% -> 25.8 /
    85.7%);
  * CIFAR-10 ResNet-8 (8x8 global pool, 4.1 against 19.9): 23.6 dB / 95.6% -> 28.0 dB / 97.2%;
  * MobileNetV1 0.25 (QAT, 4x4 global pool that keeps its input's range) and EfficientNet-Lite0
    (GlobalAveragePool, which the quantizer leaves float): untouched.
The TensorRT and openvino layouts quantize only the inputs of compute ops, so there the pool's
consumer already takes the pool's own range. ONNX Runtime's quantizer has no option for an
AveragePool output of its own, hence this rule.
"""

from __future__ import annotations

import onnx

# An output at most this fraction of its input's width loses at least one bit on the shared grid
NARROWING = 0.5


def narrowing_pools(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the AveragePool nodes whose calibrated output range is at most NARROWING times
    as wide as their input's (pools without both ranges are left to the quantizer)."""
    out = []
    for node in model.graph.node:
        if node.op_type != "AveragePool" or not node.input or not node.output:
            continue
        x, y = ranges.get(node.input[0]), ranges.get(node.output[0])
        if x is None or y is None or x[1] <= x[0]:
            continue
        if y[1] - y[0] <= NARROWING * (x[1] - x[0]):
            out.append(node.name)
    return out
