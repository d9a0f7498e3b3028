"""Reliability (issue 18), hostile model files refused in one line before the work: a fixed
batch of 64, a 20000x20000 input, external weights that are over 2 GiB, shorter than declared or
hard-linked to another file (checked without reading gigabytes)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.core.errors import UserError
from app.core.model.checks import load_checked_model
from tests.assets import YOLOX_ONNX
from tests.conftest import IMAGES, needs_assets
from tests.reliability.helpers import assert_one_line_error, cli, copy_images

pytestmark = needs_assets


def classifier(path: Path, shape: list[int], *, weights_file: str | None = None) -> Path:
    """A real image classifier (global pool + Gemm) with input `shape`; with `weights_file`
    its 3x3 weight lives there as external data (36 bytes, written beside the model)."""
    w = numpy_helper.from_array(np.arange(9, dtype=np.float32).reshape(3, 3), "w")
    if weights_file:
        (path.parent / weights_file).write_bytes(numpy_helper.to_array(w).tobytes())
        w.data_location = TensorProto.EXTERNAL
        for key, value in (("location", weights_file), ("offset", "0"), ("length", "36")):
            entry = w.external_data.add()
            entry.key, entry.value = key, value
        w.ClearField("raw_data")
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [shape[0], 3])
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_fixed_batch_of_64_is_one_line_in_run_and_calibrate(tmp_path):
    model = classifier(tmp_path / "batch64.onnx", [64, 3, 32, 32])
    photo = IMAGES / "photos-misc103" / "dog_0.jpg"
    images = copy_images([photo], tmp_path / "images")
    for command in (
        ["run", "--model", str(model), "--source", str(photo)],
        [
            *("calibrate", "--model", str(model), "--images", str(images)),
            *("--workspace", str(tmp_path / "ws")),
        ],
    ):
        assert_one_line_error(cli(*command), str(model), "fixed batch of 64", "batch 1")


def test_a_half_precision_export_is_refused_saying_to_export_fp32(tmp_path):
    """The real YOLOX-Nano converted with float16 inputs and outputs (what a half=True export
    gives): ONNX Runtime used to reject the probe's float frame in a line about tensor types."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = tmp_path / "yolox_half.onnx"
    half = convert_float_to_float16(onnx.load(str(YOLOX_ONNX)), keep_io_types=False)
    onnx.save(half, str(model))
    photo = str(IMAGES / "photos-misc103" / "dog_0.jpg")
    run = ["run", "--model", str(model), "--source", photo]
    for command in (["inspect", "--model", str(model)], run):
        assert_one_line_error(cli(*command), str(model), "is float16", "export it again in FP32")


def test_a_20000_square_input_is_refused_before_onnx_runtime_runs(tmp_path):
    model = classifier(tmp_path / "huge.onnx", [1, 3, 20000, 20000])
    started = time.monotonic()
    with pytest.raises(UserError, match=r"huge\.onnx: input shape \[1, 3, 20000, 20000\]"):
        load_checked_model(model)
    assert time.monotonic() - started < 5  # ONNX Runtime took 40 s and 4.8 GB on it
    assert_one_line_error(cli("inspect", "--model", str(model)), str(model), "sides up to 8192")


def test_external_weights_shorter_than_declared_are_refused(tmp_path):
    model = classifier(tmp_path / "m.onnx", [1, 3, 32, 32], weights_file="w.bin")
    load_checked_model(model)  # whole: fine
    with open(tmp_path / "w.bin", "r+b") as fh:
        fh.truncate(20)
    with pytest.raises(UserError, match=r"'w\.bin' is shorter than declared \(20 bytes"):
        load_checked_model(model)


def test_hard_linked_external_weights_are_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    model = classifier(folder / "m.onnx", [1, 3, 32, 32], weights_file="w.bin")
    os.link(folder / "w.bin", tmp_path / "elsewhere.bin")  # the same file under two names
    with pytest.raises(UserError, match=r"'w\.bin' is a hard link shared with another file"):
        load_checked_model(model)
    assert_one_line_error(cli("inspect", "--model", str(model)), str(model), "hard link")


def test_over_2_gib_of_external_weights_is_refused_without_reading_them(tmp_path):
    """2.4 GB declared in a sparse file: refused from the declarations, in well under the time
    reading it would take (the old code read it all, then failed serialising)."""
    model_file = classifier(tmp_path / "big.onnx", [1, 3, 32, 32])
    model = onnx.load(str(model_file))
    big = onnx.TensorProto(name="big", data_type=TensorProto.FLOAT, dims=[600_000_000])
    big.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "big.bin"), ("offset", "0"), ("length", "2400000000")):
        entry = big.external_data.add()
        entry.key, entry.value = key, value
    model.graph.initializer.append(big)
    onnx.save(model, str(model_file))
    with open(tmp_path / "big.bin", "wb") as fh:
        fh.truncate(2_400_000_000)  # sparse: no disk used
    started = time.monotonic()
    proc = cli("inspect", "--model", str(model_file))
    assert_one_line_error(proc, str(model_file), "2.2 GiB", "up to 2 GiB")
    assert time.monotonic() - started < 60
