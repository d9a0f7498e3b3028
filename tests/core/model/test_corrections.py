"""The user's corrections outlive re-inspection; label sidecars are matched and count-checked;
a moved model keeps its workspace (real models, real files)."""

from __future__ import annotations

import json
import shutil

import pytest

from app.core.errors import UserError
from app.core.model.inspection import inspect_model
from app.core.model.overrides import (
    corrected_spec,
    load_overrides,
    load_spec_file,
    save_overrides,
)
from app.core.model.workspace import Workspace, default_root
from app.core.model.workspace_index import find_workspace
from tests.conftest import RESNET8, YOLOX, needs_assets

pytestmark = needs_assets


def _copy(src_folder, dest):
    dest.mkdir(parents=True)
    for path in src_folder.iterdir():
        shutil.copy(path, dest / path.name)
    return dest


def test_corrections_survive_reinspection(tmp_path):
    spec = inspect_model(RESNET8)
    assert spec.preprocess.color == "RGB" and spec.preprocess.mean == [0, 0, 0]
    ws = Workspace.for_model(spec, tmp_path / "ws")
    edits = {"color": "BGR", "mean": [1.0, 2.0, 3.0], "conf": 0.6, "labels": list("abcdefghij")}
    save_overrides(ws.root, edits)
    # opening the model again: a fresh guess, then the user's fields on top
    again, merged = corrected_spec(inspect_model(RESNET8), ws.root)
    assert merged == edits
    assert again.preprocess.color == "BGR" and again.preprocess.mean == [1.0, 2.0, 3.0]
    assert again.postprocess.conf == 0.6 and again.labels[:2] == ["a", "b"]
    assert any("set by you" in n and "mean" in n for n in again.notes)
    Workspace.for_model(again, ws.root)
    saved = Workspace.open(ws.root).spec()
    assert saved.preprocess.color == "BGR" and saved.labels[9] == "j"
    # what was guessed stays apart: user.json holds only the fields the user set
    assert json.loads((ws.root / "user.json").read_text()) == edits
    assert load_overrides(ws.root) == edits


def test_bad_corrections_name_the_file(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps({"std": [1, 0, 1]}))
    with pytest.raises(UserError, match=r"spec\.json: 'std' must be"):
        load_spec_file(tmp_path / "spec.json")
    (tmp_path / "user.json").write_text(json.dumps({"colour": "RGB"}))
    with pytest.raises(UserError, match=r"user\.json: 'colour'"):
        load_overrides(tmp_path)
    with pytest.raises(UserError, match="fixed at 32x32"):
        corrected_spec(inspect_model(RESNET8), None, {"size": [64, 64]})


def test_corrected_names_for_another_model_are_not_used(tmp_path):
    spec, _ = corrected_spec(inspect_model(RESNET8), None, {"labels": ["a", "b"], "scale": 2.0})
    assert spec.labels[0] == "airplane" and spec.preprocess.scale == 2.0
    assert any(
        "2 class names" in p and "10 classes" in p and "not used" in p for p in spec.problems
    )


def test_label_file_for_another_model_is_not_used(tmp_path):
    folder = _copy(RESNET8, tmp_path / "m")
    (folder / "labels_cifar10.txt").write_text("cat\ndog\n")  # two names, ten classes
    spec = inspect_model(folder)
    assert spec.labels == [f"class {i}" for i in range(10)]
    problem = next(p for p in spec.problems if "labels_cifar10.txt" in p)
    assert "2 names" in problem and "10 classes" in problem and "not used" in problem


def test_sidecar_named_after_the_model_wins(tmp_path):
    folder = _copy(YOLOX, tmp_path / "m")
    (folder / "coco-colormap.json").unlink()
    names = [f"thing{i}" for i in range(80)]
    (folder / "labels.txt").write_text("\n".join(f"other{i}" for i in range(80)))
    (folder / "yolox_nano_classes.json").write_text(json.dumps({"classes": names}))
    spec = inspect_model(folder)
    assert spec.labels == names
    assert any("yolox_nano_classes.json" in n for n in spec.notes)


def test_moved_model_keeps_its_workspace(tmp_path):
    first = _copy(RESNET8, tmp_path / "a")
    spec = inspect_model(first)
    ws = Workspace.for_model(spec, None)
    assert ws.root.parent == default_root() and ws.moved_from is None
    save_overrides(ws.root, {"color": "BGR"})
    moved = tmp_path / "b" / "renamed.onnx"
    moved.parent.mkdir()
    shutil.move(first / "resnet8_cifar10.onnx", moved)
    shutil.rmtree(first)
    spec2, _ = corrected_spec(inspect_model(moved), find_workspace(spec.sha256, default_root()))
    again = Workspace.for_model(spec2, None)
    assert again.root == ws.root  # found by content, though the name changed
    assert again.moved_from == str(first / "resnet8_cifar10.onnx")
    assert Workspace.open(ws.root).spec().path == str(moved.resolve())
    assert spec2.preprocess.color == "BGR"


def test_custom_workspace_is_found_by_hash(tmp_path):
    spec = inspect_model(RESNET8)
    ws = Workspace.for_model(spec, tmp_path / "mine")
    assert find_workspace(spec.sha256, default_root()) == ws.root.resolve()
    assert Workspace.for_model(inspect_model(RESNET8), None).root == ws.root.resolve()
