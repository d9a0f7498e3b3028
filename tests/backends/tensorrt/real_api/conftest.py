"""Fixtures of the real-bindings session: NVIDIA's real `tensorrt` and `cuda.bindings.runtime`."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import pytest

from tests.backends.tensorrt.real_api.checked import CheckedCudart, CheckedTrt


def _load(env: str, module: str) -> Any:
    folder = os.environ.get(env)
    if not folder:
        pytest.skip(f"{env} is not set; test_real_bindings.py sets it")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(module)


@pytest.fixture(scope="session")
def trt() -> Any:
    """The real `tensorrt` module of the generation this session was started for."""
    return _load("INT8_STUDIO_REAL_TRT", "tensorrt")


@pytest.fixture(scope="session")
def cudart() -> Any:
    """The real `cuda.bindings.runtime` (cuda-python 12.x beside TensorRT 10, 13.x beside 11)."""
    return _load("INT8_STUDIO_REAL_CUDA", "cuda.bindings.runtime")


@pytest.fixture
def problems() -> list[str]:
    return []


@pytest.fixture
def checked(trt: Any, cudart: Any, problems: list[str]) -> tuple[CheckedTrt, CheckedCudart]:
    return CheckedTrt(trt, problems), CheckedCudart(cudart, problems)


@pytest.fixture(scope="session")
def major(trt: Any) -> int:
    return int(trt.__version__.split(".")[0])
