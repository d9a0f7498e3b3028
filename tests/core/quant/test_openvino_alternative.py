"""Where INT8 did not pay on ONNX Runtime and OpenVINO is installed, `quantize` and the Variants
tab point at the variant made for OpenVINO (on a 2-core Xeon with AMX YOLOX-Nano's int8 ran at
1.02x FP32 on ONNX Runtime and int8-ov at 0.78x OpenVINO's FP32)."""

from __future__ import annotations

import pytest

from app.core.quant.speed import speed_entry
from app.core.quant.variant_speed import openvino_alternative

pytest.importorskip("openvino", reason="OpenVINO not installed (pip install openvino)")


def meta(name: str, fp32_ms: float, int8_ms: float, backend: str = "ort-cpu") -> dict:
    return {
        "name": name,
        "precision": "int8",
        "speed": speed_entry(fp32_ms, int8_ms, 50, name, backend),
    }


def test_a_slow_int8_on_onnx_runtime_points_at_int8_ov_until_it_exists():
    slow = meta("int8", 9.12, 9.49)  # this session's quantize check on the Xeon: 1.04x
    line = openvino_alternative([slow], ["int8", "fp32-prep"])
    assert line is not None and line.startswith("int8 is not faster than fp32 on ONNX Runtime here")
    assert "build int8-ov" in line
    assert openvino_alternative([slow], ["int8", "int8-ov"]) is None  # already built
    assert openvino_alternative([meta("int8", 9.0, 7.0)], ["int8"]) is None  # INT8 pays here
    # a variant timed on OpenVINO itself is no reason to suggest OpenVINO
    assert openvino_alternative([meta("int8-ov", 9.0, 9.5, "openvino-cpu")], ["int8-ov"]) is None
    assert openvino_alternative([{"name": "fp16", "precision": "fp16"}], ["fp16"]) is None
