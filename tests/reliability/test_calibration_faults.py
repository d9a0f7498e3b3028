"""Calibration faults from the hostile test (issue 18): a reused calibration becomes the latest,
a lost latest.json mends itself, bad percentiles are refused before any work, the reader's memory
does not grow with the folder, and concurrent rebuilds of one damaged calibration all succeed."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from app.core.errors import UserError
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.calibration_images import CalibrationReader
from app.core.safe_json import load_json
from tests.conftest import IMAGES, RESNET8, needs_assets
from tests.reliability.helpers import copy_images, copy_model_folder

pytestmark = needs_assets
CIFAR = IMAGES / "cifar10-test500"


@pytest.fixture
def ws(tmp_path) -> Workspace:
    model = copy_model_folder(RESNET8, tmp_path / "model")
    return Workspace.for_model(inspect_model(model), tmp_path / "ws")


@pytest.fixture
def images(tmp_path) -> Path:
    for cls in ("cat", "ship"):
        copy_images(sorted((CIFAR / cls).glob("*.jpg"))[:3], tmp_path / "images" / cls)
    return tmp_path / "images"


def _latest_key(ws: Workspace) -> str:
    return load_json(ws.root / "calibration" / "latest.json")["key"]


def test_reused_calibration_becomes_the_one_quantize_uses(ws, images):
    first = calibrate(ws, images, method="minmax")
    second = calibrate(ws, images, method="percentile")
    assert _latest_key(ws) == second.key
    again = calibrate(ws, images, method="minmax")
    assert again.reused and again.key == first.key
    assert _latest_key(ws) == first.key  # the old code kept pointing at the percentile one
    assert latest_calibration(ws) == first.folder


def test_lost_latest_json_is_written_again_by_a_reused_calibration(ws, images):
    result = calibrate(ws, images, method="minmax")
    (ws.root / "calibration" / "latest.json").unlink()
    with pytest.raises(UserError, match="no calibration yet"):
        latest_calibration(ws)
    again = calibrate(ws, images, method="minmax")
    assert again.reused
    assert latest_calibration(ws) == result.folder


@pytest.mark.parametrize("value", [150.0, 0.0, -1.0, float("nan"), float("inf")])
def test_bad_percentile_is_refused_before_any_work(ws, images, value):
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="percentile"):
        calibrate(ws, images, method="percentile", percentile=value)
    assert time.perf_counter() - t0 < 5.0  # not after collecting ranges
    assert not (ws.root / "calibration").exists() or not any(
        p.name != "latest.json" for p in (ws.root / "calibration").iterdir()
    )


def test_reader_decodes_a_bounded_window_ahead_of_the_model(ws):
    files = sorted(CIFAR.rglob("*.jpg"))[:200]
    reader = CalibrationReader(ws.spec(), files, batch=1, workers=2)
    batches = iter(reader)
    next(batches)
    time.sleep(0.5)  # give the decoders every chance to run ahead
    # Executor.map decoded all 200 at once (the 1.4 GB RSS of a 512-image calibration)
    assert reader.started <= 1 + 2 * reader.workers
    rest = sum(1 for _ in batches)
    assert rest == 199 and reader.done == 200 and len(reader.used) == 200


def test_concurrent_rebuilds_of_one_damaged_calibration_all_succeed(ws, images):
    result = calibrate(ws, images, method="minmax")
    (result.folder / "ranges.json").write_text("{ truncated")
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            calibrate(ws, images, method="minmax")
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=rebuild) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not [e for e in errors if not isinstance(e, UserError)], errors
    # every outcome is either a rebuilt calibration or a clear "another calibration is writing"
    assert latest_calibration(ws) == result.folder
    assert load_json(result.folder / "ranges.json")


def test_fifo_and_symlink_loop_are_skipped_with_what_they_are(ws, images):
    os.mkfifo(images / "cat" / "pipe.jpg")  # reading it would block forever
    (images / "cat" / "loop.jpg").symlink_to("loop.jpg")
    (images / "cat" / "gone.jpg").symlink_to("nowhere.jpg")
    result = calibrate(ws, images, method="minmax")
    reasons = {Path(s.source).name: s.reason for s in result.skipped}
    assert len(result.images_used) == 6
    assert "named pipe" in reasons["pipe.jpg"]  # was "empty file (0 bytes)"
    assert "symbolic link loop" in reasons["loop.jpg"]  # was "file disappeared"
    assert "broken symbolic link" in reasons["gone.jpg"]


def test_a_missing_images_folder_is_refused_before_a_workspace_is_made(tmp_path):
    from tests.reliability.helpers import assert_one_line_error, cli

    ws = tmp_path / "ws"
    proc = cli("calibrate", "--model", str(RESNET8), "--images", str(tmp_path / "nope"),
               "--workspace", str(ws))  # fmt: skip
    assert_one_line_error(proc, f"{tmp_path / 'nope'}: no such folder", "calibration images")
    assert not ws.exists()
