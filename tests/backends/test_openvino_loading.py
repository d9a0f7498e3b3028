"""OpenVINO as the app loads and warms it: imported without its usage telemetry, and a model
with open input dims compiled for the frames' shape during warm-up, not at the second frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.model.inspection import inspect_model
from tests.conftest import IMAGES, YOLOX_TUTORIAL, needs_assets

pytest.importorskip("openvino", reason="OpenVINO not installed (pip install openvino)")
PHOTOS = sorted((IMAGES / "coco-val-dev64" / "images").glob("*.jpg"))


def test_the_app_imports_openvino_without_its_usage_telemetry(tmp_path):
    # A plain `import openvino` sends a usage event from a thread and writes a client id under
    # ~/intel; the app's users were never asked, so the app's import leaves neither behind
    import subprocess
    import sys

    probe = (
        "import threading; from app.core.openvino_session import core; core(); "
        "from app.backends.registry import status_of; assert status_of('openvino-cpu').available; "
        "print(sorted(t.name for t in threading.enumerate()))"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['MainThread']"
    assert not (tmp_path / "intel").exists()


@needs_assets
def test_warm_up_compiles_the_fixed_shape_request_before_the_first_frame():
    # the tutorial-format export (open height and width) run with a 416x416 letterbox: a live
    # view would otherwise stall at its second frame while OpenVINO compiles for that shape
    import dataclasses

    from app.backends.openvino_cpu import OpenVinoRunner

    spec = inspect_model(YOLOX_TUTORIAL)
    letterbox = dataclasses.replace(spec.preprocess, resize="letterbox", size=[416, 416],
                                    short_side=None)  # fmt: skip
    spec = dataclasses.replace(spec, preprocess=letterbox)
    with OpenVinoRunner(spec.path, threads=1) as runner:
        pipe = FramePipeline(spec, runner)
        assert runner._model is not None and not runner._fixed
        assert pipe.warm_up()
        assert list(runner._fixed) == [(("input", (1, 3, 416, 416)),)]  # compiled in warm-up
        compiled = runner._fixed[(("input", (1, 3, 416, 416)),)]
        pipe.infer_raw(read_image(PHOTOS[0]))
        pipe.infer_raw(read_image(PHOTOS[1]))
        # the frames ran on that request: nothing compiled anew
        assert runner._fixed == {(("input", (1, 3, 416, 416)),): compiled}
