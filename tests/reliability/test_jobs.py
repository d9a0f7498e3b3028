"""Reliability (issue 8), jobs: cancellation at every checkpoint of calibrate / quantize /
evaluate, Ctrl-C on the command line, two calibrations at once, a disk that fills up while
writing (streams that end mid-stream: test_streams_ending.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.backends.factory import make_runner
from app.core.errors import Cancelled, UserError
from app.core.eval.evaluate import evaluate
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.bias_correction import ensure_channel_means
from app.core.quant.calibration import CalibrationResult, calibrate, latest_calibration
from app.core.quant.quantize import make_int8, quantize
from app.core.quant.sensitive_blocks import ensure_sensitive_blocks, file_name
from tests.conftest import IMAGES, RESNET8, VIDEOS, YOLOX, needs_assets
from tests.reliability.helpers import (
    ROOT,
    CancelAtCheck,
    assert_one_line_error,
    cli,
    copy_images,
    copy_model_folder,
    count_frames,
    file_size_limit,
    temp_leftovers,
)

pytestmark = needs_assets
CIFAR = IMAGES / "cifar10-test500"
VIDEO = VIDEOS / "bottle-detection.mp4"


@pytest.fixture
def images(tmp_path) -> Path:
    for cls in ("cat", "ship"):
        copy_images(sorted((CIFAR / cls).glob("*.jpg"))[:3], tmp_path / "images" / cls)
    return tmp_path / "images"


@pytest.fixture
def model(tmp_path) -> Path:
    return copy_model_folder(RESNET8, tmp_path / "model")


def _no_calibration_left(ws: Workspace) -> None:
    folder = ws.root / "calibration"
    assert not folder.exists() or list(folder.iterdir()) == [], list(folder.iterdir())
    with pytest.raises(UserError, match="no calibration yet"):
        latest_calibration(ws)


# ---------------------------------------------------------------------------------------------
# cancel at every checkpoint
# ---------------------------------------------------------------------------------------------
def test_cancel_at_every_calibration_checkpoint_leaves_no_table_that_looks_valid(
    tmp_path, model, images
):
    counter = CancelAtCheck()
    probe_ws = Workspace.for_model(inspect_model(model), tmp_path / "probe")
    calibrate(probe_ws, images, method="percentile", cancel=counter)
    total = counter.checks
    # every decoded image, each batch of the collection and histogram passes, the final write
    assert total >= 6 + 1 + 1 + 2
    for at in range(1, total + 1):
        ws = Workspace.for_model(inspect_model(model), tmp_path / f"ws{at}")
        with pytest.raises(Cancelled):
            calibrate(ws, images, method="percentile", cancel=CancelAtCheck(at))
        _no_calibration_left(ws)
        assert temp_leftovers(ws.root) == [] and temp_leftovers(model.parent) == []
    result = calibrate(ws, images, method="percentile")
    assert not result.reused and not result.warnings[1:]  # nothing damaged was found


def test_cancel_at_every_quantize_checkpoint_leaves_no_variant_that_looks_valid(
    tmp_path, model, images
):
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, images, method="minmax")
    counter = CancelAtCheck()
    probe = Workspace.for_model(inspect_model(model), tmp_path / "probe")
    calibrate(probe, images, method="minmax")
    # bias correction's channel means and the sensitive blocks are measured once per
    # calibration (with checkpoints of their own, checked below); measured up front, the
    # checkpoints left are the variants' own
    for w in (ws, probe):
        ensure_channel_means(w, latest_calibration(w))
        ensure_sensitive_blocks(w, latest_calibration(w), "ort-cpu", make_int8)
    quantize(probe, precisions=["int8", "fp16"], cancel=counter)
    total = counter.checks
    assert total == 4  # before and after each of the two variants
    for at in range(1, total + 1):
        for name in ("int8", "fp16"):
            for path in (ws.variant_path(name), ws.variant_meta_path(name)):
                path.unlink(missing_ok=True)
        with pytest.raises(Cancelled):
            quantize(ws, precisions=["int8", "fp16"], cancel=CancelAtCheck(at))
        recorded = {v["name"]: v["valid"] for v in ws.variants()}
        assert all(recorded.values()), recorded  # every record matches its graph
        done = (at - 1) // 2  # variants recorded before the cancelling checkpoint
        assert sorted(recorded) == sorted(["int8", "fp16"][:done])
        for name in ["int8", "fp16"][done:]:
            with pytest.raises(UserError, match=f"variant '{name}' is (not in|missing or dam)"):
                ws.require_variant(name)
        assert temp_leftovers(ws.root) == []
    assert [v["reused"] for v in quantize(ws, precisions=["int8", "fp16"])] == [True, False]


def test_cancelled_sensitive_block_measurement_keeps_no_record_and_no_working_copy(
    tmp_path, model, images
):
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, images, method="minmax")
    calib = latest_calibration(ws)
    ensure_channel_means(ws, calib)
    probe = Workspace.for_model(inspect_model(model), tmp_path / "probe")
    calibrate(probe, images, method="minmax")
    ensure_channel_means(probe, latest_calibration(probe))
    counter = CancelAtCheck()
    ensure_sensitive_blocks(probe, latest_calibration(probe), "ort-cpu", make_int8, counter)
    assert counter.checks > 4  # images read, the all-INT8 graph, one per block
    for at in (1, counter.checks // 2, counter.checks):
        with pytest.raises(Cancelled):
            ensure_sensitive_blocks(ws, calib, "ort-cpu", make_int8, CancelAtCheck(at))
        assert not (calib / file_name("ort-cpu")).exists()
        assert temp_leftovers(ws.root) == []


def test_cancel_at_every_evaluate_checkpoint_raises_cancelled_and_writes_nothing(
    tmp_path, model, images
):
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, images, method="minmax")
    quantize(ws, precisions=["int8"])
    counter = CancelAtCheck()
    run = {"variants": ["fp32", "int8"], "runner_factory": make_runner}
    evaluate(ws, images, **run, cancel=counter)
    # each image on each variant (images are decoded as each variant takes them, none kept)
    assert counter.checks == 6 * 2
    for at in range(1, counter.checks + 1):
        with pytest.raises(Cancelled):
            evaluate(ws, images, **run, cancel=CancelAtCheck(at))
    assert not (ws.root / "results").exists()
    assert temp_leftovers(ws.root) == []


def test_ctrl_c_during_cli_calibration_exits_130_saying_interrupted_and_keeps_nothing(tmp_path):
    model = copy_model_folder(YOLOX, tmp_path / "model")
    images = copy_images(
        sorted((IMAGES / "coco-train128" / "images").glob("*.jpg"))[:96], tmp_path / "images"
    )
    ws = tmp_path / "ws"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "calibrate",
            "--model",
            str(model),
            "--images",
            str(images),
            "--method",
            "entropy",
            "--workspace",
            str(ws),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (ws / "calibration").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "calibration never started"
        time.sleep(0.05)
    time.sleep(3.0)  # past shape inference, into the collection passes
    assert proc.poll() is None, "calibration finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "int8-studio: interrupted" in err and "Traceback" not in err
    assert list((ws / "calibration").iterdir()) == []
    assert temp_leftovers(ws) == [] and temp_leftovers(model.parent) == []


# ---------------------------------------------------------------------------------------------
# two jobs at once
# ---------------------------------------------------------------------------------------------
def _two_calibrations(ws: Workspace, images: Path, staggered: bool) -> list[object]:
    """Two calibrate() calls of one workspace in threads, both writing their tables at the same
    moment. `staggered`: the second starts once the first is collecting ranges (a user who
    clicks Calibrate again a moment later), so only the final write overlaps."""
    both_collected = threading.Barrier(2)
    first_collecting = threading.Event()
    outcomes: dict[int, object] = {}

    def job(i: int) -> None:
        def progress(fraction: float, message: str) -> None:
            first_collecting.set()
            if message == "writing calibration tables":
                both_collected.wait(timeout=60)  # both finished collecting: write at once

        try:
            outcomes[i] = calibrate(ws, images, method="minmax", progress=progress)
        except BaseException as exc:  # the outcome itself is what is checked
            outcomes[i] = exc
            both_collected.abort()  # do not keep the other run waiting
            first_collecting.set()

    threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    threads[0].start()
    if staggered:
        first_collecting.wait(timeout=60)
    threads[1].start()
    for t in threads:
        t.join(timeout=120)
    return [outcomes[i] for i in sorted(outcomes)]


def _assert_clean_outcome(ws: Workspace, images: Path, outcomes: list[object]) -> None:
    kinds = [f"{type(o).__name__}: {o}"[:200] for o in outcomes]
    assert all(isinstance(o, (CalibrationResult, UserError)) for o in outcomes), kinds
    assert any(isinstance(o, CalibrationResult) for o in outcomes), kinds
    folder = latest_calibration(ws)
    assert calibrate(ws, images, method="minmax").reused and folder.is_dir()
    assert temp_leftovers(ws.root) == []


def test_two_calibrations_of_one_workspace_started_together_finish_or_refuse_cleanly(
    tmp_path, model, images
):
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    _assert_clean_outcome(ws, images, _two_calibrations(ws, images, staggered=False))


def test_two_calibrations_of_one_workspace_finishing_together_finish_or_refuse_cleanly(
    tmp_path, model, images
):
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    _assert_clean_outcome(ws, images, _two_calibrations(ws, images, staggered=True))


# ---------------------------------------------------------------------------------------------
# disk full (a per-file size limit: writes fail with EFBIG, as they would with ENOSPC)
# ---------------------------------------------------------------------------------------------
def test_disk_full_during_calibrate_is_one_line_and_leaves_nothing(tmp_path, model, images):
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    proc = cli(
        "calibrate",
        "--model",
        str(model),
        "--images",
        str(images),
        "--method",
        "minmax",
        "--workspace",
        str(ws.root),
        preexec_fn=file_size_limit(2000),
    )
    leftovers = temp_leftovers(ws.root) + temp_leftovers(model.parent)
    assert leftovers == []
    assert_one_line_error(proc, "File too large")


def test_disk_full_during_quantize_leaves_no_partial_variant(tmp_path, model, images):
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, images, method="minmax")
    proc = cli(
        "quantize",
        "--workspace",
        str(ws.root),
        "--precision",
        "int8,fp16",
        preexec_fn=file_size_limit(20_000),
    )
    assert proc.returncode != 0
    assert ws.variants() == [] and temp_leftovers(ws.root) == []
    variants = ws.root / "variants"
    assert not variants.exists() or list(variants.iterdir()) == []


def test_disk_full_during_quantize_says_so_in_one_line(tmp_path, model, images):
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, images, method="minmax")
    proc = cli(
        "quantize",
        "--workspace",
        str(ws.root),
        "--precision",
        "int8",
        preexec_fn=file_size_limit(20_000),
    )
    assert_one_line_error(proc, "File too large")


def test_disk_full_while_run_writes_annotated_images_is_one_line(tmp_path, images):
    # the fused-I/O copy of the model is cached by an earlier run, as on a user's machine (run
    # alone, this test's full disk would also stop that copy, which warns and runs without it)
    assert cli("run", "--model", str(RESNET8), "--source", str(images)).returncode == 0
    out = tmp_path / "out"
    proc = cli(
        "run",
        "--model",
        str(RESNET8),
        "--source",
        str(images),
        "--output",
        str(out),
        preexec_fn=file_size_limit(1000),
    )
    assert temp_leftovers(out) == []
    assert_one_line_error(proc, "File too large")


def test_disk_full_while_run_writes_annotated_video_leaves_no_broken_video(tmp_path):
    out = tmp_path / "out"
    proc = cli(
        "run",
        "--model",
        str(RESNET8),
        "--source",
        str(VIDEO),
        "--max-frames",
        "30",
        "--output",
        str(out),
        preexec_fn=file_size_limit(60_000),
    )
    for video in out.glob("*.mp4"):
        assert count_frames(video) == 30, f"{video.name} is left unplayable"
    assert proc.returncode != 0 or list(out.glob("*.mp4"))
