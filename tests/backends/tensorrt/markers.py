"""Skip markers of the TensorRT tests, declared once."""

from __future__ import annotations

import pytest

from app.backends.tensorrt import tensorrt_status
from tests.assets import YOLOX_ONNX

needs_trt_gpu = pytest.mark.skipif(
    not tensorrt_status().available,
    reason="needs TensorRT and an NVIDIA GPU; not installable on this machine",
)
needs_yolox = pytest.mark.skipif(not YOLOX_ONNX.is_file(), reason="YOLOX-Nano not in shared assets")
