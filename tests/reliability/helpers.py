"""Helpers for the reliability suite (issue 8): CLI runs in a subprocess, fault injection
(file-size limits, dropped privileges, cancellation at the k-th checkpoint), odd models and
videos made on the fly, and checks that nothing half-written was left behind."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.core.errors import Cancelled, CancelToken

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534


# ---------------------------------------------------------------------------------------------
# the command line, as the user sees it
# ---------------------------------------------------------------------------------------------
def cli(
    *args: str,
    preexec_fn: Callable[[], None] | None = None,
    timeout: float = 240,
) -> subprocess.CompletedProcess:
    """`int8-studio ARGS` in a fresh interpreter (so limits and crashes stay there)."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=preexec_fn,
        timeout=timeout,
    )


# The plain progress lines long work prints when stderr is not a terminal (app/cli/output.py):
# they say how far the work got, they are not part of the error.
PROGRESS_LINE = re.compile(
    r"^(calibrating|quantizing|evaluating|analysing|searching|benchmarking): \d{1,3}%( .*)?$"
)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2, no traceback, exactly one line on stderr (besides progress lines) that
    contains every needle."""
    err = proc.stderr.strip()
    assert "Traceback" not in err, err[-2000:]
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    lines = [ln for ln in err.splitlines() if not PROGRESS_LINE.match(ln)]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{err[-2000:]}"
    assert lines[0].startswith("int8-studio: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def file_size_limit(limit: int) -> Callable[[], None]:
    """preexec_fn: a disk that is full after `limit` bytes per file (writes fail with EFBIG)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run_as_nobody(body: str, *, imports: str = "", timeout: float = 240) -> dict:
    """Run `body` in a subprocess that imported the app as root and then dropped to uid 65534.

    The interpreter itself lives under /root (unreadable to nobody), so everything `body`
    needs is imported before the privileges go. `body` assigns its answer to `result`, which
    comes back through JSON.
    """
    script = "\n".join(
        [
            "import json, os, sys",
            f"sys.path.insert(0, {str(ROOT)!r})",
            "import app.cli.main, app.core.frames.imageio, app.core.frames.sources",
            "import app.core.quant.calibration",
            "import app.core.quant.ranges, app.core.quant.quantize, app.core.eval.evaluate",
            "import onnxruntime, onnxruntime.quantization, onnxruntime.quantization.calibrate",
            "import PIL.Image, PIL.ImageOps, cv2, numpy, tempfile, shutil, concurrent.futures",
            "import logging, argparse, contextlib, io, hashlib, colorsys, queue, threading",
            "import platformdirs, uuid, random, struct, zlib, copy, math, statistics, secrets",
            "import glob, fnmatch, shlex, string, textwrap, traceback, weakref, base64, csv",
            imports,
            "app.cli.main.build_parser()",
            f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})",
            "result = None",
            body,
            "print('RESULT=' + json.dumps(result))",
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=timeout,
        # the test's private config folder (conftest) is root's: nobody's is under its HOME
        env={**{k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}, "HOME": "/tmp"},
    )
    found = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")]
    assert found, f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return {"result": json.loads(found[-1][7:]), "stderr": proc.stderr, "rc": proc.returncode}


def open_to_all(*paths: Path) -> None:
    """chmod 777 so the dropped-privilege subprocess can write there."""
    for p in paths:
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(0o777)


# ---------------------------------------------------------------------------------------------
# cancellation and leftovers
# ---------------------------------------------------------------------------------------------
class CancelAtCheck(CancelToken):
    """A real CancelToken that cancels itself at its `at`-th check (None: never), counting."""

    def __init__(self, at: int | None = None) -> None:
        super().__init__()
        self.at = at
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.at is not None and self.checks >= self.at:
            self.cancel()
        if self.cancelled:
            raise Cancelled()


def temp_leftovers(root: Path) -> list[str]:
    """Files or folders under `root` that look like an interrupted atomic write."""
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if ".part" in p.name or p.name.endswith(".tmp") or "-inferred" in p.name
    )


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def copy_model_folder(src: Path, dest: Path) -> Path:
    """A writable copy of a checkpoint folder (fault tests must never touch shared assets:
    ONNX Runtime's shape inference writes a temporary file beside the model)."""
    shutil.copytree(src, dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o777 if p.is_dir() else 0o666)
    models = sorted(dest.glob("*.onnx"))
    return models[0]


def with_opset(src: Path, dest: Path, version: int) -> Path:
    """`src` with its default-domain opset import set to `version` (e.g. 99: from the future)."""
    model = onnx.load(str(src))
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = version
    onnx.save(model, str(dest))
    return dest


def dynamic_fixed_reshape_classifier(path: Path, size: int = 32, classes: int = 3) -> Path:
    """An image classifier whose input H and W are dynamic but whose graph only runs at
    `size`x`size` (Reshape to a fixed length): it needs --size."""
    flat = 3 * size * size
    w = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(classes, flat)).astype(np.float32), "w"
    )
    shape = numpy_helper.from_array(np.array([1, flat], np.int64), "shape")
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])
    nodes = [
        helper.make_node("Reshape", ["image", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def retrained_copy(src_folder: Path, dest: Path) -> Path:
    """The same architecture with other weights (a re-trained model): same tensor names,
    another sha256. Returns the .onnx path in `dest` (labels copied along)."""
    model_file = copy_model_folder(src_folder, dest)
    model = onnx.load(str(model_file))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.ndim == 4:
            init.CopyFrom(numpy_helper.from_array(arr * 3.0, init.name))
            break
    onnx.save(model, str(model_file))
    return model_file


# ---------------------------------------------------------------------------------------------
# images and videos
# ---------------------------------------------------------------------------------------------
def copy_images(files: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, dest / f.name)
    return dest


def mjpeg_video(src: Path, dest: Path, frames: int) -> Path:
    """An MJPEG .avi of the first `frames` frames of `src`: a container that still plays when
    cut short (the way a camera stream or an interrupted recording ends)."""
    cap = cv2.VideoCapture(str(src))
    writer = None
    for _ in range(frames):
        ok, image = cap.read()
        if not ok:
            break
        if writer is None:
            h, w = image.shape[:2]
            writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
        writer.write(image)
    cap.release()
    assert writer is not None
    writer.release()
    return dest


def truncated_copy(src: Path, dest: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def count_frames(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.isOpened() and cap.read()[0]:
        n += 1
    cap.release()
    return n


def deep_json(depth: int = 100_000) -> str:
    """Valid JSON nested deeper than Python's recursion limit."""
    return "[" * depth + "]" * depth
