"""`quantize` says what graph preparation rewrote before quantizing (real YOLOX-Nano: its Focus
stem; real ResNet-8: nothing, and no line)."""

from __future__ import annotations

from app.cli.main import main
from tests.conftest import IMAGES, RESNET8, YOLOX, needs_assets

pytestmark = needs_assets
COCO = IMAGES / "coco-train128" / "images"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _calibrated(capsys, tmp_path, model, images) -> str:
    root = tmp_path / "ws"
    argv = ["calibrate", "--model", model, "--images", images, "--workspace", root]
    code, _out, err = _run(capsys, *argv, "--count", 4, "--method", "minmax")
    assert code == 0, err
    return str(root)


def test_quantize_names_the_folded_focus_stem(capsys, tmp_path):
    root = _calibrated(capsys, tmp_path, YOLOX, COCO)
    code, out, err = _run(capsys, "quantize", "--workspace", root, "--precision", "int8,fp16")
    assert code == 0, err
    lines = [x for x in out.splitlines() if x.startswith("prepared: ")]
    assert lines == [
        "prepared: int8, fp16: Focus stem folded into one strided conv (same outputs, fewer passes)"
    ]


def test_nothing_to_fold_prints_no_prepared_line(capsys, tmp_path):
    root = _calibrated(capsys, tmp_path, RESNET8, IMAGES / "cifar10-test500" / "cat")
    code, out, err = _run(capsys, "quantize", "--workspace", root, "--precision", "int8")
    assert code == 0, err
    assert "int8" in out and not any(x.startswith("prepared: ") for x in out.splitlines())
