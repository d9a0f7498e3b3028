"""Shared fixtures: the real models, photos and videos in ../shared/assets."""

from __future__ import annotations

import atexit
import os
import shutil
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

# the throw-away cache goes when the run ends (each run used to leave ~9 MB in the temp dir)
atexit.register(shutil.rmtree, os.environ["INT8_STUDIO_CACHE"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch):
    """Default workspaces and the workspace index (found by model hash) go to a data dir of the
    test's own: never the user's, and no test finds another test's workspace."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))
    # the user's own presets (app.core.model.presets) likewise: none unless a test writes some
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("INT8_STUDIO_PRESETS", raising=False)


@pytest.fixture(scope="session")
def assets() -> Path:
    if not MODELS.is_dir():
        pytest.skip(MISSING)
    return ASSETS
