"""Reliability (issue 8), models: unusable model files through `run` and `calibrate` (not only
`inspect`, which tests/core/model/test_modelspec.py covers), class lists that do not fit, dynamic
inputs without a size, and an opset the installed ONNX Runtime does not have."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import IMAGES, RESNET8, YOLOX, needs_assets
from tests.model_files import text_model, tiny_classifier
from tests.reliability.helpers import (
    assert_one_line_error,
    cli,
    copy_images,
    copy_model_folder,
    dynamic_fixed_reshape_classifier,
    with_opset,
)

pytestmark = needs_assets
CAT = sorted((IMAGES / "cifar10-test500" / "cat").glob("*.jpg"))[0]


def _truncated(path: Path) -> None:
    path.write_bytes((YOLOX / "yolox_nano.onnx").read_bytes()[:50_000])


def _symlinked_weights_outside(path: Path) -> None:
    """External data named inside the folder, but a symlink to a file outside it."""
    outside = path.parent.parent / "outside.bin"
    outside.write_bytes(b"\0" * 64)
    os.symlink(outside, path.parent / "weights.bin")
    tiny_classifier(path, external_location="weights.bin")


BAD_MODELS = {
    "empty": (lambda p: p.write_bytes(b""), "the file is empty (0 bytes); export the model again"),
    "truncated": (_truncated, "not a readable ONNX model (truncated or another format"),
    "not-protobuf": (
        lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(3000)),
        "not a readable ONNX model",
    ),
    "external-absolute": (
        lambda p: tiny_classifier(p, external_location="/etc/hostname"),
        "points outside the model folder ('/etc/hostname'); refusing to read it",
    ),
    "external-symlink-escape": (
        _symlinked_weights_outside,
        "points outside the model folder ('weights.bin'); refusing to read it",
    ),
    "not-vision": (lambda p: text_model(p), "not a vision model: it needs one 4-D float image"),
}


@pytest.mark.parametrize("command", ["run", "calibrate"])
@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_bad_model_in_run_and_calibrate_is_one_line_naming_the_file_exit_2(tmp_path, kind, command):
    folder = tmp_path / "model dir"
    folder.mkdir()
    model = folder / "model.onnx"
    make, message = BAD_MODELS[kind]
    make(model)
    if command == "run":
        proc = cli("run", "--model", str(model), "--source", str(CAT))
    else:
        images = copy_images([CAT], tmp_path / "imgs")
        proc = cli(
            "calibrate",
            "--model",
            str(model),
            "--images",
            str(images),
            "--workspace",
            str(tmp_path / "ws"),
        )
    assert_one_line_error(proc, str(model), message)
    assert not (tmp_path / "ws").exists(), "a workspace was made for an unusable model"


# ---------------------------------------------------------------------------------------------
# an opset from the future
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def opset99(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("opset99")
    return with_opset(tiny_classifier(folder / "src.onnx"), folder / "future.onnx", 99)


@pytest.mark.parametrize("command", ["inspect", "run"])
def test_opset_newer_than_onnxruntime_is_one_line_naming_the_file_exit_2(opset99, command):
    args = ["--model", str(opset99)] + (["--source", str(CAT)] if command == "run" else [])
    line = assert_one_line_error(cli(command, *args), str(opset99), "uses ONNX opset 99")
    assert "Traceback" not in line


def test_opset_newer_than_onnxruntime_says_which_opset_and_what_to_do(opset99):
    line = assert_one_line_error(cli("inspect", "--model", str(opset99)), str(opset99))
    assert "opset 99" in line and "export" in line


# ---------------------------------------------------------------------------------------------
# class lists that do not fit the model's outputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "names",
    [12, 8],
    ids=["longer", "shorter"],
)
def test_class_list_longer_or_shorter_than_outputs_is_not_used_and_runs(tmp_path, names):
    """Issue 15: a label file whose count is not the model's classes (a list for another model)
    is not used; the warning names the file and why, and the model still runs."""
    model = copy_model_folder(RESNET8, tmp_path / "resnet8")
    (model.parent / "labels_cifar10.txt").write_text(
        "\n".join(f"name{i}" for i in range(names)) + "\n"
    )
    proc = cli("inspect", "--model", str(model.parent))
    assert proc.returncode == 0, proc.stderr
    warning = next(line for line in proc.stdout.splitlines() if "labels_cifar10.txt" in line)
    assert warning.startswith("warning     ") and "not used" in warning
    assert f"it has {names} names but the model has 10 classes" in warning
    assert "labels      10: class 0 | class 1" in proc.stdout
    report = tmp_path / "r.json"
    proc = cli(
        "run", "--model", str(model), "--source", str(CAT), "--topk", "10", "--json", str(report)
    )
    assert proc.returncode == 0, proc.stderr
    labels = [t["label"] for t in json.loads(report.read_text())["results"][0]["topk"]]
    assert sorted(labels) == sorted(f"class {i}" for i in range(10))


# ---------------------------------------------------------------------------------------------
# dynamic input size
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dynamic_model(tmp_path_factory) -> Path:
    return dynamic_fixed_reshape_classifier(tmp_path_factory.mktemp("dyn") / "dynamic.onnx")


def test_dynamic_input_without_size_is_refused_naming_the_file_exit_2(dynamic_model):
    proc = cli("inspect", "--model", str(dynamic_model))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"int8-studio: error: {dynamic_model}: ONNX Runtime cannot run")


def test_dynamic_input_without_size_says_choose_a_size_in_one_line(dynamic_model):
    assert_one_line_error(
        cli("inspect", "--model", str(dynamic_model)), str(dynamic_model), "--size"
    )


def test_dynamic_input_with_size_given_runs(dynamic_model, tmp_path):
    proc = cli("inspect", "--model", str(dynamic_model), "--size", "32x32")
    assert proc.returncode == 0, proc.stderr
    assert "(dynamic size)" in proc.stdout
    assert "dynamic input size; using 32x32 as chosen" in proc.stdout
    proc = cli("run", "--model", str(dynamic_model), "--size", "32x32", "--source", str(CAT))
    assert proc.returncode == 0, proc.stderr


def test_bad_size_argument_is_refused_by_the_parser():
    proc = cli("inspect", "--model", str(RESNET8), "--size", "big")
    assert proc.returncode == 2 and "size must look like 416x416, not 'big'" in proc.stderr
