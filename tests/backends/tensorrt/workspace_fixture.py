"""A real calibrated ResNet-8 workspace with its TensorRT Q/DQ and FP16 graphs (seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize
from tests.assets import CIFAR, RESNET8

CALIBRATION_IMAGES = 6


def make_workspace(folder: Path) -> Workspace:
    """Calibrate (min-max, 6 CIFAR photos) and quantize for TensorRT: int8-trt and fp16 graphs."""
    images = folder / "calibration-images"
    images.mkdir(parents=True)
    for path in sorted(CIFAR.rglob("*.jpg"))[:CALIBRATION_IMAGES]:
        shutil.copy(path, images / path.name)
    ws = Workspace.for_model(inspect_model(RESNET8), folder / "ws")
    calibrate(ws, images, method="minmax")
    quantize(ws, precisions=["int8", "fp16"], target="tensorrt")
    return ws
