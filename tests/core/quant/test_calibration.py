"""Calibration on real photos: sampling, tables, caching, corruption, cancellation, bad folders."""

from __future__ import annotations

import json
import shutil

import pytest

from app.core.errors import Cancelled, CancelToken, UserError
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate, latest_calibration, select_images
from app.core.quant.trt_table import read_trt_native_cache
from tests.conftest import IMAGES, YOLOX, YOLOX_TUTORIAL, needs_assets

pytestmark = needs_assets
COCO = IMAGES / "coco-train128" / "images"


@pytest.fixture
def small_folder(tmp_path):
    """Twelve real COCO photos of assorted sizes plus one corrupt file."""
    folder = tmp_path / "calib"
    folder.mkdir()
    for path in sorted(COCO.glob("*.jpg"))[:12]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def test_sampling_is_reproducible_and_warns_below_200():
    a, warn = select_images(COCO, count=20, seed=3)
    b, _ = select_images(COCO, count=20, seed=3)
    c, _ = select_images(COCO, count=20, seed=4)
    assert a == b and a != c and len(a) == 20
    assert "200" in warn[0]
    half, _ = select_images(COCO, fraction=0.5)
    assert len(half) == 64


def test_empty_and_non_image_folders_are_refused(tmp_path):
    with pytest.raises(UserError, match="no images found"):
        select_images(tmp_path)
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "data.csv").write_text("a,b")
    with pytest.raises(UserError, match="no images found"):
        select_images(tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        select_images(tmp_path / "missing")


def test_calibrate_writes_every_table_and_reuses_and_rebuilds(tmp_path, small_folder):
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    first = calibrate(ws, small_folder, method="minmax")
    assert not first.reused and len(first.images_used) == 12
    assert [s.source.endswith("broken.jpg") for s in first.skipped] == [True]
    for name in (
        "ranges.json",
        "calibration.flatbuffers",
        "calibration.cache",
        "calibration.json",
        "calibration_trt.cache",
        "meta.json",
    ):
        assert (first.folder / name).is_file(), name
    header, table = read_trt_native_cache(first.folder / "calibration_trt.cache")
    assert header.startswith("TRT-") and header.endswith("MinMaxCalibration")
    assert "images" in table and table["images"] == pytest.approx(
        255.0, rel=1e-3
    )  # raw 0..255 input
    assert latest_calibration(ws) == first.folder
    again = calibrate(ws, small_folder, method="minmax")
    assert again.reused and again.key == first.key
    # a damaged cached artifact is detected by its hash and rebuilt
    (first.folder / "calibration.flatbuffers").write_bytes(b"garbage")
    rebuilt = calibrate(ws, small_folder, method="minmax")
    assert not rebuilt.reused and any("damaged" in w for w in rebuilt.warnings)
    assert (rebuilt.folder / "calibration.flatbuffers").read_bytes() != b"garbage"
    # another method or image list is another key
    other = calibrate(ws, small_folder, method="percentile", count=6)
    assert other.key != first.key and len(other.images_used) == 6


def test_the_key_follows_the_images_content_not_their_times(tmp_path, small_folder):
    """Photos synced or checked out again (new mtimes, same bytes) reuse the calibration; one
    photo edited in place, even keeping its size and time, makes a new one."""
    import os

    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    first = calibrate(ws, small_folder, method="minmax", count=4)
    later = 2_000_000_000
    for photo in small_folder.iterdir():
        os.utime(photo, (later, later))
    again = calibrate(ws, small_folder, method="minmax", count=4)
    assert again.reused and again.key == first.key
    edited = small_folder / first.images_used[0].split("/")[-1]
    data = bytearray(edited.read_bytes())
    data[-3] ^= 0xFF  # inside the JPEG's last scan: still decodes, other pixels
    edited.write_bytes(bytes(data))
    os.utime(edited, (later, later))
    changed = calibrate(ws, small_folder, method="minmax", count=4)
    assert not changed.reused and changed.key != first.key


def test_cancel_midway_leaves_nothing_that_looks_complete(tmp_path, small_folder):
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if len(seen) == 4:
            token.cancel()

    with pytest.raises(Cancelled):
        calibrate(ws, small_folder, method="entropy", progress=progress, cancel=token)
    calib_dir = ws.root / "calibration"
    leftovers = [p.name for p in calib_dir.iterdir()] if calib_dir.exists() else []
    assert leftovers == []
    with pytest.raises(UserError, match="no calibration yet"):
        latest_calibration(ws)


def test_dynamic_size_model_calibrates_at_the_chosen_size(tmp_path, small_folder):
    spec = inspect_model(YOLOX_TUTORIAL, size=[320, 416])
    ws = Workspace.for_model(spec, tmp_path / "ws")
    result = calibrate(ws, small_folder, method="minmax", count=4)
    ranges = json.loads((result.folder / "ranges.json").read_text())
    assert len(result.images_used) == 4 and ranges
    assert json.loads((ws.root / "spec.json").read_text())["preprocess"]["size"] == [320, 416]


def test_workspace_refuses_another_models_folder(tmp_path):
    Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    with pytest.raises(UserError, match="belongs to another model"):
        Workspace.for_model(inspect_model(YOLOX_TUTORIAL), tmp_path / "ws")
