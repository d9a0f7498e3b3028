"""Where the real models, photos and videos are: ../shared/assets beside the checkout, or the
folder named by $INT8_STUDIO_ASSETS. Every test module finds them here (and through the `assets`
fixture in conftest.py), nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("INT8_STUDIO_ASSETS", ROOT.parent / "shared" / "assets"))
MODELS = ASSETS / "models"
IMAGES = ASSETS / "images"
VIDEOS = ASSETS / "videos"

YOLOX = MODELS / "yolox-nano-coco"
YOLOX_ONNX = YOLOX / "yolox_nano.onnx"
YOLOX_TUTORIAL = MODELS / "yolox-nano-coco-tutorial-format"
MOBILENET = MODELS / "mobilenet-v1-0.25-128-imagenet"
RESNET8 = MODELS / "resnet8-cifar10"
HAGRID = MODELS / "hagrid-hand-detector" / "hand_detector.onnx"
VIDEO = VIDEOS / "bottle-detection.mp4"
COCO_DEV64 = IMAGES / "coco-val-dev64"
CIFAR = IMAGES / "cifar10-test500"

MISSING = f"real models and photos not found at {ASSETS} (../shared/assets or $INT8_STUDIO_ASSETS)"
needs_assets = pytest.mark.skipif(not MODELS.is_dir(), reason=MISSING)
