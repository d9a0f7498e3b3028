"""INT8 Studio: calibrate, quantize, build and compare vision models (ONNX Runtime, TensorRT)."""

from __future__ import annotations

__version__ = "0.1.0"
