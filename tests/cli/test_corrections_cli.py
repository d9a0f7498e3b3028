"""Corrections set on the command line stay with the model through every command; a moved model
keeps its workspace; a stale INT8 variant is refused until rebuilt or allowed (real ResNet-8)."""

from __future__ import annotations

import json
import shutil

import pytest

from app.cli.main import main
from app.core.model.workspace import Workspace
from tests.conftest import IMAGES, RESNET8, needs_assets

pytestmark = needs_assets
CIFAR = IMAGES / "cifar10-test500"


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for path in RESNET8.iterdir():
        shutil.copy(path, folder / path.name)
    return folder / "resnet8_cifar10.onnx"


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    for cls in ("cat", "ship", "truck"):
        for path in sorted((CIFAR / cls).glob("*.jpg"))[:3]:
            shutil.copy(path, folder / f"{cls}-{path.name}")
    return folder


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _workspace(out: str) -> str:
    """The folder `calibrate` printed on its `workspace` line."""
    return next(line.split()[1] for line in out.splitlines() if line.startswith("workspace "))


def _scores(capsys, tmp_path, *argv):
    report = tmp_path / "run.json"
    code, _, err = _run(
        capsys, "run", *argv, "--source", CIFAR / "cat" / "0000.jpg", "--json", report
    )
    assert code == 0, err
    return [r["topk"] for r in json.loads(report.read_text())["results"]], err


def test_cli_corrections_persist_through_every_command(capsys, tmp_path, model, images):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i}" for i in range(10)))
    plain, _ = _scores(capsys, tmp_path, "--model", model)
    code, out, err = _run(
        capsys,
        "calibrate",
        "--model",
        model,
        "--images",
        images,
        "--count",
        4,
        "--color",
        "BGR",
        "--mean",
        "10,20,30",
        "--class-names",
        names,
    )
    assert code == 0, err
    ws = Workspace.open(_workspace(out))
    assert json.loads((ws.root / "user.json").read_text())["color"] == "BGR"
    # calibrate again with no flags: re-inspection guesses RGB, the correction stays
    code, out, err = _run(capsys, "calibrate", "--model", model, "--images", images, "--count", 4)
    assert code == 0, err
    spec = ws.spec()
    assert spec.preprocess.color == "BGR" and spec.preprocess.mean == [10, 20, 30]
    assert spec.labels[0] == "n0"
    code, out, _ = _run(capsys, "inspect", "--model", model, "--write-spec", tmp_path / "s.json")
    assert "BGR" in out and "corrections color, mean, labels" in out
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["color"] == "BGR" and written["labels"][0] == "n0"
    # run --model uses the workspace's corrections: same as run --workspace, not as the guess
    corrected, _ = _scores(capsys, tmp_path, "--model", model)
    from_ws, _ = _scores(capsys, tmp_path, "--workspace", ws.root)
    assert corrected == from_ws and corrected != plain
    assert corrected[0][0]["label"].startswith("n")
    # a spec file sets the same fields (here back to the guess's colour, for this command)
    written["color"] = "RGB"
    written["mean"] = [0, 0, 0]
    (tmp_path / "s.json").write_text(json.dumps(written))
    via_file, _ = _scores(capsys, tmp_path, "--model", model, "--spec", tmp_path / "s.json")
    assert [[t["score"] for t in r] for r in via_file] == [[t["score"] for t in r] for r in plain]


def test_stale_int8_is_refused_until_rebuilt_or_allowed(capsys, tmp_path, model, images):
    code, out, err = _run(capsys, "calibrate", "--model", model, "--images", images, "--count", 4)
    root = _workspace(out)
    assert _run(capsys, "quantize", "--workspace", root, "--precision", "int8")[0] == 0
    code, out, err = _run(capsys, "calibrate", "--model", model, "--images", images, "--count", 6)
    assert code == 0, err
    code, out, err = _run(capsys, "quantize", "--workspace", root, "--precision", "fp16")
    assert code == 0 and "stale" in out and "stale: int8" in out
    evaluate = ["evaluate", "--workspace", root, "--images", images, "--variants", "int8"]
    code, out, err = _run(capsys, *evaluate)
    assert code == 2 and "stale" in err and "--allow-stale" in err
    code, out, err = _run(
        capsys, "bench", "--workspace", root, "--variants", "int8", "--iterations", 3, "--warmup", 1
    )
    assert code == 2 and "stale" in err
    code, out, err = _run(
        capsys, "run", "--workspace", root, "--variant", "int8", "--source", images
    )
    assert code == 2 and "stale" in err
    code, out, err = _run(capsys, *evaluate, "--allow-stale")
    assert code == 0 and "using stale variant 'int8'" in err
    # rebuilt from the latest calibration: used without a word
    assert _run(capsys, "quantize", "--workspace", root, "--precision", "int8")[0] == 0
    code, out, err = _run(capsys, *evaluate)
    assert code == 0 and "stale" not in err


def test_moved_model_keeps_its_workspace_cli(capsys, tmp_path, model, images):
    code, out, err = _run(
        capsys, "calibrate", "--model", model, "--images", images, "--count", 4, "--color", "BGR"
    )
    root = _workspace(out)
    moved = tmp_path / "elsewhere" / "renamed.onnx"
    moved.parent.mkdir()
    shutil.move(model, moved)
    evaluate = ["evaluate", "--workspace", root, "--images", images, "--variants", "fp32"]
    code, out, err = _run(capsys, *evaluate)  # not opened at its new place yet: says how
    assert code == 2 and "gone (moved?)" in err and "calibrate --model" in err
    code, out, err = _run(capsys, "calibrate", "--model", moved, "--images", images, "--count", 4)
    assert code == 0, err
    assert f"moved from {model}" in out and _workspace(out) == root
    assert Workspace.open(root).spec().path == str(moved)
    assert Workspace.open(root).spec().preprocess.color == "BGR"
    code, out, err = _run(capsys, *evaluate)
    assert code == 0, err


def test_a_spec_written_for_a_model_without_names_reads_back(capsys, tmp_path):
    """`--write-spec` writes "labels": [] for a model without class names (MMDeploy's dets and
    labels, no metadata); `--spec` read that as an error ("'labels' must be a list of class
    names (got [])"): its own file refused."""
    from tests.core.model.derived_layouts import build_layout

    model = build_layout("mmdeploy", tmp_path / "mm.onnx", meta=False)
    spec_file = tmp_path / "s.json"
    code, _, err = _run(capsys, "inspect", "--model", model, "--write-spec", spec_file)
    assert code == 0, err
    assert json.loads(spec_file.read_text())["labels"] == []
    code, out, err = _run(capsys, "inspect", "--model", model, "--spec", spec_file)
    assert code == 0, err
    assert "labels      none" in out


def test_a_bad_value_on_the_command_line_names_the_flag_not_a_file(capsys, model):
    assert main(["inspect", "--model", str(model), "--std", "0,0,0"]) == 2
    err = capsys.readouterr().err
    assert "the command line: 'std' must be three numbers, none 0" in err
    assert err.rstrip().endswith("fix --std") and "fix the file" not in err
