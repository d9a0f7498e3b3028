"""Sources and the `run` command on real files, including every awkward image the issue lists."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest

from app.cli.main import main
from app.core.errors import UserError
from app.core.frames.imageio import read_image
from app.core.frames.sources import FrameSource, list_images, open_capture
from tests.conftest import IMAGES, MOBILENET, VIDEOS, YOLOX, needs_assets
from tests.image_files import INVALID, VALID, make_awkward_folder

pytestmark = needs_assets
PHOTO = IMAGES / "photos-misc103" / "dog_0.jpg"


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    return make_awkward_folder(tmp_path_factory.mktemp("awkward"), PHOTO)


def test_folder_listing_is_recursive_sorted_case_insensitive(awkward):
    names = [p.relative_to(awkward).as_posix() for p in list_images(awkward)]
    assert names == sorted(names)
    assert "UPPER.JPG" in names and "sub/nested.bmp" in names and "notes.txt" not in names


def test_exif_orientation_is_honoured(awkward):
    h, w = read_image(PHOTO).shape[:2]
    assert read_image(awkward / "exif_rotated.jpg").shape[:2] == (w, h)


def test_run_on_awkward_folder_processes_valid_and_lists_invalid(awkward, tmp_path):
    report = tmp_path / "r.json"
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--model",
            str(YOLOX),
            "--source",
            str(awkward),
            "--output",
            str(out),
            "--json",
            str(report),
        ]
    )
    assert code == 0
    data = json.loads(report.read_text())
    assert data["provider"] == "CPUExecutionProvider" and data["fused_io"] is True
    done = {r["source"].removeprefix(str(awkward) + "/") for r in data["results"]}
    assert done == set(VALID)
    skipped = {s["source"].removeprefix(str(awkward) + "/"): s["reason"] for s in data["skipped"]}
    assert set(skipped) == set(INVALID)
    for name, reason in INVALID.items():
        assert reason in skipped[name]
    # the valid photos still find the dog, whatever their encoding
    for r in data["results"]:
        if "tiny" not in r["source"]:
            assert any(d["label"] == "dog" for d in r["detections"]), r["source"]
    assert len(list(out.glob("*.jpg"))) == len(VALID)
    assert set(data["timing"]) == {
        "decode_ms",
        "preprocess_ms",
        "infer_ms",
        "postprocess_ms",
        "draw_ms",
    }


def test_run_on_video_writes_annotated_video_and_classifier_topk(tmp_path):
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    video = VIDEOS / "bottle-detection.mp4"
    assert (
        main(
            [
                "run",
                "--model",
                str(YOLOX),
                "--source",
                str(video),
                "--max-frames",
                "12",
                "--output",
                str(out),
                "--json",
                str(report),
            ]
        )
        == 0
    )
    data = json.loads(report.read_text())
    assert [r["frame"] for r in data["results"]] == list(range(12))
    written = out / "bottle-detection_annotated.mp4"
    cap = cv2.VideoCapture(str(written))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert not list(out.glob(".*part"))
    assert (
        main(
            [
                "run",
                "--model",
                str(MOBILENET),
                "--source",
                str(IMAGES / "imagenet-samples" / "parrot.jpg"),
                "--json",
                str(report),
                "--topk",
                "3",
            ]
        )
        == 0
    )
    top = json.loads(report.read_text())["results"][0]["topk"]
    assert len(top) == 3 and top[0]["label"] == "macaw"


def test_missing_camera_fails_clearly():
    with pytest.raises(UserError, match="camera 7 did not open"):
        open_capture(7)
    src = FrameSource("7")
    assert src.kind == "camera"


def test_missing_source_is_reported_not_fatal(tmp_path):
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "run",
                "--model",
                str(YOLOX),
                "--source",
                str(tmp_path / "nope.jpg"),
                "--source",
                str(PHOTO),
                "--json",
                str(report),
            ]
        )
        == 0
    )
    data = json.loads(report.read_text())
    assert len(data["results"]) == 1 and "no such file" in data["skipped"][0]["reason"]


def test_cuda_request_on_a_cpu_machine_says_it_fell_back(tmp_path):
    from app.backends.registry import status_of

    if status_of("ort-cuda").available:
        pytest.skip("this machine has a working CUDA provider")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "run",
            "--model",
            str(YOLOX),
            "--source",
            str(PHOTO),
            "--backend",
            "ort-cuda",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert (
        data["provider"] == "CPUExecutionProvider"
        and "asked for CUDAExecutionProvider" in data["fallback"]
    )
    assert "warning" in proc.stderr
    strict = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "run",
            "--model",
            str(YOLOX),
            "--source",
            str(PHOTO),
            "--backend",
            "ort-cuda",
            "--strict",
        ],
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 2 and "strict mode: not running" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_backends_command_explains_why_not():
    proc = subprocess.run([sys.executable, "-m", "app", "backends"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "ort-cpu" in proc.stdout and "tensorrt" in proc.stdout
