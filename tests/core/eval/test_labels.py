"""Class labels read from wherever the user points (a file,class CSV anywhere, a folder of
class-named subfolders), on the real CIFAR-10 images and ResNet-8; and the reason given when
evaluation falls back to agreement with FP32."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.backends.factory import make_runner
from app.core.errors import UserError
from app.core.eval.evaluate import evaluate
from app.core.eval.labels import class_labels, read_csv_labels
from app.core.frames.sources import list_images
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from tests.assets import CIFAR, RESNET8, needs_assets

pytestmark = needs_assets
PER_CLASS = 3


@pytest.fixture(scope="module")
def classes() -> list[str]:
    return inspect_model(RESNET8).labels


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """CIFAR images copied into one flat folder (no class in the path): name -> class."""
    folder = tmp_path_factory.mktemp("flat")
    truth = {}
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        for image in sorted(cls.glob("*.jpg"))[:PER_CLASS]:
            name = f"{cls.name}_{image.name}"
            shutil.copy(image, folder / name)
            truth[name] = cls.name
    return folder, truth


def _csv(path: Path, rows: list[tuple[str, str]], header: str | None = "file,class") -> Path:
    lines = ([header] if header else []) + [f"{f},{c}" for f, c in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_class_named_subfolders_of_the_image_folder(classes):
    images = list_images(CIFAR)
    found = class_labels(classes, images, CIFAR)
    assert len(images) == 500 and found.labelled == 500 and found.note == ""
    for path, truth in zip(images, found.truth):
        assert truth == {classes.index(path.parent.name)}
    # the same folder given in Labels reads the same
    assert class_labels(classes, images, CIFAR, CIFAR).truth == found.truth


@pytest.mark.parametrize("header", ["file,class", "filename,label", None])
def test_csv_outside_the_image_folder(tmp_path, flat, classes, header):
    folder, truth = flat
    rows = sorted(truth.items())
    labels = _csv(tmp_path / "labels.csv", rows, header)
    images = list_images(folder)
    found = class_labels(classes, images, folder, labels)
    assert found.source == str(labels) and found.note == ""
    assert [t for t in found.truth] == [{classes.index(truth[p.name])} for p in images]


def test_csv_with_paths_relative_to_the_image_folder(tmp_path, classes):
    rows = [(f"{c}/0000.jpg", c) for c in ("cat", "dog", "ship")] + [("frog/0001.jpg", "frog")]
    labels = _csv(tmp_path / "l.csv", rows)
    images = [CIFAR / r[0] for r in rows]
    found = class_labels(classes, images, CIFAR, labels)
    assert found.truth == [{classes.index(c)} for _, c in rows]
    assert read_csv_labels(labels)["frog/0001.jpg"] == ["frog"]


def test_folder_of_class_named_subfolders_elsewhere(tmp_path, flat, classes):
    folder, truth = flat
    mirror = tmp_path / "by-class"
    for name, cls in truth.items():
        (mirror / cls).mkdir(parents=True, exist_ok=True)
        (mirror / cls / name).write_bytes(b"")  # only the names matter
    found = class_labels(classes, list_images(folder), folder, mirror)
    assert found.labelled == len(truth) and found.source == str(mirror)


def test_why_there_are_no_labels(tmp_path, flat, classes):
    folder, truth = flat
    images = list_images(folder)
    none = class_labels(classes, images, folder)
    assert none.labelled == 0 and "no class labels found" in none.note and str(folder) in none.note
    wrong = _csv(tmp_path / "w.csv", [(n, "kitten") for n in truth])
    found = class_labels(classes, images, folder, wrong)
    assert found.labelled == 0 and found.unknown_names == ["kitten"]
    assert "'kitten'" in found.note and "none of the model's 10 classes" in found.note
    other = _csv(tmp_path / "o.csv", [("elsewhere.jpg", "cat")])
    assert "none of the 30 images is listed" in class_labels(classes, images, folder, other).note
    with pytest.raises(UserError, match="no such labels file or folder"):
        class_labels(classes, images, folder, tmp_path / "missing")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UserError, match=r"b\.csv"):
        class_labels(classes, images, folder, binary)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace.for_model(inspect_model(RESNET8), tmp_path_factory.mktemp("ws"))


def test_evaluate_scores_against_a_labels_csv_given_anywhere(tmp_path, ws, flat):
    """Old code ignored a CSV outside the image folder and gave agreement ("vs fp32")."""
    folder, truth = flat
    labels = _csv(tmp_path / "labels.csv", sorted(truth.items()))
    report = evaluate(ws, folder, labels_dir=labels, variants=("fp32",), runner_factory=make_runner)
    assert report["labelled"] and report["labelled_images"] == len(truth)
    assert report["labels"] == str(labels) and "labels_note" not in report
    metrics = report["variants"][0]["metrics"]
    assert 40.0 < metrics["top1"] <= 100.0 and metrics["top5"] >= metrics["top1"]
    bare = evaluate(ws, folder, variants=("fp32",), runner_factory=make_runner)
    assert not bare["labelled"] and "no class labels found" in bare["labels_note"]
    assert "top1" not in bare["variants"][0]["metrics"]


def test_two_class_model_reports_top2_not_top5(tmp_path, flat):
    """min(5, classes): a 'top5' of a 2-class model is 100% by definition and misleading."""
    from tests.two_class_model import LABELS, two_class_model

    folder, truth = flat
    spec = inspect_model(two_class_model(tmp_path / "two"))
    ws = Workspace.for_model(spec, tmp_path / "ws")
    rows = [(n, LABELS[i % 2]) for i, n in enumerate(sorted(truth))]
    report = evaluate(
        ws,
        folder,
        labels_dir=_csv(tmp_path / "l.csv", rows),
        variants=("fp32",),
        runner_factory=make_runner,
    )
    metrics = report["variants"][0]["metrics"]
    assert report["labelled"] and "top2" in metrics and "top5" not in metrics
    assert metrics["top2"] == 100.0
