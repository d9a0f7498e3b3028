"""`inspect --find-preprocessing` and the collapse alarm of `evaluate`, on the real ResNet-8."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from app.cli.main import main
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from tests.assets import CIFAR, needs_assets
from tests.core.model.unknown_copies import RESNET8_ONNX, unknown_copy

pytestmark = needs_assets
CIFAR_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def test_inspect_finds_preprocessing_and_writes_the_table(tmp_path: Path, capsys) -> None:
    model = unknown_copy(RESNET8_ONNX, tmp_path / "m")
    out = tmp_path / "inspect.json"
    argv = ["inspect", "--model", str(model), "--find-preprocessing", str(CIFAR)]
    assert main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "preprocessing tried on 32 images" in text
    chosen = [line for line in text.splitlines() if line.startswith("*")]
    assert len(chosen) == 1 and "raw 0..255, RGB" in chosen[0]
    assert "found       raw 0..255, RGB" in text
    assert "check preprocessing" in text  # the /255 and [-1, 1] rows collapse
    data = json.loads(out.read_text())["preprocessing_search"]
    assert data["chosen"].startswith("raw 0..255, RGB")
    assert sum(row["chosen"] for row in data["rows"]) == 1
    assert {"score", "top_class_share", "mean_confidence", "accuracy"} <= set(data["rows"][0])


def test_inspect_refuses_a_folder_without_images(tmp_path: Path, capsys) -> None:
    model = unknown_copy(RESNET8_ONNX, tmp_path / "m")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["inspect", "--model", str(model), "--find-preprocessing", str(empty)]) != 0
    assert "no readable images" in capsys.readouterr().err


def misfed_workspace(tmp_path: Path, scale: float = 1 / 255) -> Workspace:
    """ResNet-8 (raw 0..255) fed /255 with its CIFAR-10 names: every image one class."""
    spec = inspect_model(unknown_copy(RESNET8_ONNX, tmp_path / "m"))
    pre = dataclasses.replace(spec.preprocess, scale=scale, mean=[0.0] * 3, std=[1.0] * 3)
    spec = dataclasses.replace(spec, preprocess=pre, labels=CIFAR_NAMES)
    return Workspace.for_model(spec, tmp_path / "ws")


def test_evaluate_raises_the_collapse_alarm(tmp_path: Path, capsys) -> None:
    ws = misfed_workspace(tmp_path)
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--workspace", str(ws.root), "--images", str(CIFAR)]
    assert main([*argv, "--variants", "fp32", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "warning: check preprocessing" in text
    report = json.loads(out.read_text())
    assert report["fp32_top_class_share"] >= 0.9
    assert report["preprocessing_alarm"].startswith("check preprocessing")
    assert report["variants"][0]["metrics"]["top1"] <= 15  # chance is 10%


def test_evaluate_says_nothing_when_fed_right(tmp_path: Path, capsys) -> None:
    ws = misfed_workspace(tmp_path, scale=1.0)  # raw 0..255: what ResNet-8 wants
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--workspace", str(ws.root), "--images", str(CIFAR)]
    assert main([*argv, "--variants", "fp32", "--json", str(out)]) == 0
    assert "check preprocessing" not in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert "preprocessing_alarm" not in report and report["fp32_top_class_share"] < 0.3
    assert report["variants"][0]["metrics"]["top1"] >= 60
