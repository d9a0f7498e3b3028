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
# OpenVINO's result for a Q/DQ graph depends on the CPU: with AMX (Sapphire / Emerald Rapids) it
# computes the TensorRT layout's signed int8 activations like ONNX Runtime (output cosine 0.996),
# through its AVX-512 VNNI and AVX2 kernels it does not (0.06-0.34; 0.79-0.86 on a Zen 4). The
# tests of what the app does with a graph OpenVINO gets wrong need such a graph on every CI
# machine, so OpenVINO's oneDNN is held to AVX-512 VNNI here (a ceiling: lesser CPUs keep theirs).
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")

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
