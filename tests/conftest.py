"""Shared fixtures: the real models, photos and videos in ../shared/assets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# derived graphs (fused I/O copies) go to a throw-away cache, not the user's
os.environ["INT8_STUDIO_CACHE"] = tempfile.mkdtemp(prefix="int8-studio-test-cache-")

from tests.assets import (  # noqa: F401  (re-exported: tests import them from here)
    ASSETS,
    HAGRID,
    IMAGES,
    MISSING,
    MOBILENET,
    MODELS,
    RESNET8,
    VIDEOS,
    YOLOX,
    YOLOX_TUTORIAL,
    needs_assets,
)


@pytest.fixture(scope="session")
def assets() -> Path:
    if not MODELS.is_dir():
        pytest.skip(MISSING)
    return ASSETS
