"""Shared fixtures: the real models, photos and videos in ../shared/assets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# derived graphs (fused I/O copies) go to a throw-away cache, not the user's
os.environ["INT8_STUDIO_CACHE"] = tempfile.mkdtemp(prefix="int8-studio-test-cache-")

ASSETS = Path(
    os.environ.get(
        "INT8_STUDIO_ASSETS", Path(__file__).resolve().parents[1].parent / "shared" / "assets"
    )
)
MODELS = ASSETS / "models"
IMAGES = ASSETS / "images"
VIDEOS = ASSETS / "videos"

needs_assets = pytest.mark.skipif(
    not MODELS.is_dir(), reason=f"real models and photos not found at {ASSETS} (../shared/assets)"
)

YOLOX = MODELS / "yolox-nano-coco"
YOLOX_TUTORIAL = MODELS / "yolox-nano-coco-tutorial-format"
MOBILENET = MODELS / "mobilenet-v1-0.25-128-imagenet"
RESNET8 = MODELS / "resnet8-cifar10"
HAGRID = MODELS / "hagrid-hand-detector" / "hand_detector.onnx"


@pytest.fixture(scope="session")
def assets() -> Path:
    if not MODELS.is_dir():
        pytest.skip(f"real models and photos not found at {ASSETS}")
    return ASSETS
