"""Reliability (issue 8), streams: videos and cameras that end mid-stream in `run` and
`run_live` keep what came before the cut and stop every stage."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import pytest

from app.backends.onnxrt import OrtRunner
from app.core.frames.live import run_live
from app.core.frames.pipeline import FramePipeline
from app.core.frames.sources import Frame, FrameSource
from app.core.model.inspection import inspect_model
from tests.conftest import IMAGES, RESNET8, VIDEOS, needs_assets
from tests.reliability.helpers import (
    cli,
    count_frames,
    mjpeg_video,
    temp_leftovers,
    truncated_copy,
)

pytestmark = needs_assets
CIFAR = IMAGES / "cifar10-test500"
VIDEO = VIDEOS / "bottle-detection.mp4"


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory) -> tuple[Path, int]:
    """An MJPEG clip of 40 frames cut in half on disk, and how many frames still decode."""
    folder = tmp_path_factory.mktemp("clips")
    clip = mjpeg_video(VIDEO, folder / "clip.avi", 40)
    cut = truncated_copy(clip, folder / "cut clip.avi", 0.5)
    frames = count_frames(cut)
    assert 0 < frames < 40
    return cut, frames


def test_run_on_a_video_cut_mid_stream_keeps_the_frames_before_the_cut(tmp_path, cut_clip):
    cut, frames = cut_clip
    out, report = tmp_path / "out", tmp_path / "r.json"
    proc = cli(
        "run",
        "--model",
        str(RESNET8),
        "--source",
        str(cut),
        "--output",
        str(out),
        "--json",
        str(report),
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert [r["frame"] for r in data["results"]] == list(range(frames))
    assert count_frames(out / "cut_clip_annotated.mp4") == frames
    assert temp_leftovers(out) == []


def test_run_on_an_mp4_cut_before_its_index_is_skipped_saying_cannot_open(tmp_path):
    cut = truncated_copy(VIDEO, tmp_path / "cut.mp4", 0.5)
    report = tmp_path / "r.json"
    photo = sorted((CIFAR / "cat").glob("*.jpg"))[0]
    proc = cli(
        "run",
        "--model",
        str(RESNET8),
        "--source",
        str(cut),
        "--source",
        str(photo),
        "--output",
        str(tmp_path / "out"),
        "--json",
        str(report),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert len(data["results"]) == 1
    assert data["skipped"] == [
        {
            "source": str(cut),
            "reason": "cannot open this video (unsupported codec or corrupt file)",
        }
    ]
    assert f"skipped: {cut}: cannot open this video" in proc.stdout
    assert not list((tmp_path / "out").glob("*.mp4"))
    # FFmpeg's and OpenCV's own lines about the file stay off the terminal: the app says it
    assert "moov atom" not in proc.stderr and "[ WARN" not in proc.stderr, proc.stderr[-600:]
    # only that video: one line, no summary of nothing before it, no output folder left made
    alone = cli("run", "--model", str(RESNET8), "--source", str(cut), "--output",
                str(tmp_path / "alone"))  # fmt: skip
    assert alone.returncode == 2 and "0 frame(s)" not in alone.stdout
    assert "none of the 1 source(s) could be run" in alone.stderr
    assert not (tmp_path / "alone").exists()


@pytest.fixture(scope="module")
def pipe():
    spec = inspect_model(RESNET8)
    with OrtRunner(spec.path) as runner:
        yield FramePipeline(spec, runner)


@pytest.mark.parametrize("drop_stale", [False, True], ids=["file-mode", "camera-mode"])
def test_run_live_on_a_stream_that_ends_early_finishes_cleanly(pipe, cut_clip, drop_stale):
    cut, frames = cut_clip
    threads_before = threading.active_count()
    got: list[int] = []
    stats = run_live(
        FrameSource(str(cut)), pipe, lambda f, r, img: got.append(f.index), drop_stale=drop_stale
    )
    assert stats.frames_in == frames and stats.error == ""
    if drop_stale:
        assert got[-1] == frames - 1  # the last frame before the cut is shown, not lost
    else:
        assert got == list(range(frames))
    assert threading.active_count() <= threads_before


def test_run_live_when_the_camera_disappears_raises_its_error_and_stops_every_stage(pipe):
    """A driver that fails mid-stream (unplugged USB camera): the error reaches the caller,
    frames already decoded are delivered or dropped, and no stage thread is left running."""
    cap = cv2.VideoCapture(str(VIDEO))

    def camera():
        for i in range(10):
            ok, image = cap.read()
            assert ok
            yield Frame(image, "camera:0", i)
        raise cv2.error("camera 0 was disconnected")

    threads_before = threading.active_count()
    got: list[int] = []
    start = time.monotonic()
    with pytest.raises(cv2.error, match="camera 0 was disconnected"):
        run_live(camera(), pipe, lambda f, r, img: got.append(f.index), drop_stale=True)
    cap.release()
    assert time.monotonic() - start < 10
    assert got == sorted(got) and len(got) >= 1
    assert threading.active_count() <= threads_before
