"""The TensorRT layer against NVIDIA's real bindings of TensorRT 10.x and 11.x (and cuda-python).

Runs real_api/ in a subprocess per generation (one process can import one `tensorrt`), with the
folders real_api/install.sh fills: `.ci/run` installs them; locally run
`PY=python tests/backends/tensorrt/real_api/install.sh .ci-venv/real-api`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FOLDER = Path(os.environ.get("INT8_STUDIO_REAL_API", ROOT / ".ci-venv" / "real-api"))


@pytest.mark.parametrize(("trt_dir", "cuda_dir"), [("trt10", "cuda12"), ("trt11", "cuda13")])
def test_tensorrt_layer_against_real_bindings(trt_dir: str, cuda_dir: str) -> None:
    trt, cuda = FOLDER / trt_dir, FOLDER / cuda_dir
    for folder in (trt, cuda):
        if not folder.is_dir():
            pytest.skip(f"real bindings not installed: {folder} missing (real_api/install.sh)")
    # The stub libnvinfer.so.N on the library path: registry's library probe sees this generation.
    libs = f"{trt / 'tensorrt_bindings'}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    env = dict(os.environ, INT8_STUDIO_REAL_TRT=str(trt), INT8_STUDIO_REAL_CUDA=str(cuda),
               LD_LIBRARY_PATH=libs)  # fmt: skip
    quiet = ["-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *quiet, str(ROOT / "tests/backends/tensorrt/real_api")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
