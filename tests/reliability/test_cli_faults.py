"""Reliability (issue 18), the command line: `bench --plot` on a full disk, hostile inputs
refused in one line before the work, `run`'s report of what it wrote, SIGTERM, progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from tests.conftest import IMAGES, RESNET8, needs_assets
from tests.reliability.helpers import (
    ROOT,
    assert_one_line_error,
    cli,
    copy_images,
    copy_model_folder,
    deep_json,
    file_size_limit,
    temp_leftovers,
)

pytestmark = needs_assets
CIFAR = IMAGES / "cifar10-test500"
PHOTO = IMAGES / "photos-misc103" / "dog_0.jpg"


@pytest.fixture
def ws(tmp_path) -> Workspace:
    """A ResNet-8 workspace (fp32 only: nothing to calibrate for these tests)."""
    model = copy_model_folder(RESNET8, tmp_path / "model")
    return Workspace.for_model(inspect_model(model), tmp_path / "ws")


# ---------------------------------------------------------------------------------------------
# fault 5: bench --plot
# ---------------------------------------------------------------------------------------------
def test_bench_plot_on_a_full_disk_is_one_line_and_keeps_nothing(ws, tmp_path):
    plot = tmp_path / "out" / "latency.png"
    plot.parent.mkdir()
    proc = cli(
        *("bench", "--workspace", str(ws.root), "--variants", "fp32", "--iterations", "3"),
        *("--plot", str(plot)),
        preexec_fn=file_size_limit(6000),  # bench.json fits, the PNG does not
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("int8-studio: error")]
    assert errors == [
        f"int8-studio: error: disk full while writing {plot} (File too large); free some space "
        "and run again (nothing half-written was kept)"
    ]
    assert not plot.exists() and temp_leftovers(plot.parent) == []


def test_bench_plot_naming_a_folder_is_refused_before_the_work(ws, tmp_path):
    proc = cli("bench", "--workspace", str(ws.root), "--plot", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "is a folder; give a file name" in proc.stderr
    assert not (ws.root / "results" / "bench.json").exists()
    assert not tmp_path.with_suffix(".part.png").exists()  # what the old code left there


def test_bench_plot_is_written_whole(ws, tmp_path):
    plot = tmp_path / "latency.png"
    proc = cli(
        *("bench", "--workspace", str(ws.root), "--variants", "fp32", "--iterations", "3"),
        *("--plot", str(plot)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 1000
    assert temp_leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# fault 7: hostile inputs, one line before the work
# ---------------------------------------------------------------------------------------------
def test_bench_image_that_is_not_an_image_is_one_line(ws, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    proc = cli("bench", "--workspace", str(ws.root), "--image", str(bad))
    assert_one_line_error(proc, str(bad), "give another photo")


def test_deeply_nested_coco_json_is_one_line_before_the_work(ws, tmp_path):
    coco = tmp_path / "instances.json"
    coco.write_text(deep_json())
    images = copy_images(sorted((CIFAR / "cat").glob("*.jpg"))[:2], tmp_path / "images")
    proc = cli(
        *("evaluate", "--workspace", str(ws.root), "--images", str(images)),
        *("--variants", "fp32", "--coco", str(coco)),
    )
    assert_one_line_error(proc, str(coco), "nested too deeply")


def test_json_naming_a_folder_is_refused_before_the_whole_run(ws, tmp_path):
    images = copy_images(sorted((CIFAR / "cat").glob("*.jpg"))[:2], tmp_path / "images")
    started = time.monotonic()
    proc = cli(
        *("evaluate", "--workspace", str(ws.root), "--images", str(images)),
        *("--variants", "fp32", "--json", str(tmp_path)),
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path} is a folder" in proc.stderr
    assert not (ws.root / "results").exists(), "the work ran before the refusal"
    assert time.monotonic() - started < 60


# ---------------------------------------------------------------------------------------------
# run: what it wrote, and a run where every source failed
# ---------------------------------------------------------------------------------------------
def test_run_json_records_each_annotated_file_and_the_renaming(tmp_path):
    a = copy_images([PHOTO], tmp_path / "a")
    b = copy_images([PHOTO], tmp_path / "b")
    out, report = tmp_path / "out", tmp_path / "run.json"
    proc = cli(
        *("run", "--model", str(RESNET8), "--source", str(a / PHOTO.name)),
        *("--source", str(b / PHOTO.name), "--output", str(out), "--json", str(report)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = json.loads(report.read_text())["written"]
    assert written == [
        {"source": str(a / PHOTO.name), "file": str(out / "dog_0.jpg")},
        {
            "source": str(b / PHOTO.name),
            "file": str(out / "dog_0_1.jpg"),
            "renamed_from": "dog_0.jpg",
        },
    ]
    assert all(Path(w["file"]).stat().st_size > 0 for w in written)
    assert f"renamed: {b / PHOTO.name} -> {out / 'dog_0_1.jpg'}" in proc.stdout


def test_run_where_every_source_failed_exits_2_in_one_line(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    proc = cli(
        *("run", "--model", str(RESNET8), "--source", str(empty)),
        *("--source", str(tmp_path / "missing.jpg")),
    )
    assert_one_line_error(proc, "none of the 2 source(s) could be run", str(empty))
    assert f"skipped: {tmp_path / 'missing.jpg'}" in proc.stdout


# ---------------------------------------------------------------------------------------------
# fault 9: SIGTERM cancels like Ctrl-C
# ---------------------------------------------------------------------------------------------
def test_sigterm_during_calibration_exits_143_keeping_nothing_half_written(tmp_path):
    images = tmp_path / "images"
    for cls in ("cat", "ship", "dog", "frog"):
        copy_images(sorted((CIFAR / cls).glob("*.jpg")), images / cls)
    model = copy_model_folder(RESNET8, tmp_path / "model")
    ws = tmp_path / "ws"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "app", "calibrate", "--model", str(model)),
            *("--images", str(images), "--method", "entropy", "--workspace", str(ws)),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the first progress line: the work has started
    assert first.startswith("calibrating:"), first
    proc.send_signal(signal.SIGTERM)
    err = first + proc.stderr.read()
    assert proc.wait(timeout=60) == 143, err
    assert "Traceback" not in err and "terminated; nothing half-written was kept" in err
    assert temp_leftovers(ws) == []
    assert not (ws / "calibration" / "latest.json").exists()


# ---------------------------------------------------------------------------------------------
# progress: plain lines in a log, a bar on a terminal; totals unchanged
# ---------------------------------------------------------------------------------------------
def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(ws):
    proc = cli("bench", "--workspace", str(ws.root), "--variants", "fp32", "--iterations", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("benchmarking:")]
    assert lines[0].startswith("benchmarking: 0% fp32 on ort-cpu")
    assert lines[-1] == "benchmarking: 100% done"
    assert "\r" not in proc.stderr
    assert "fp32" in proc.stdout.splitlines()[2]  # the table, as before


def test_progress_is_a_bar_on_a_terminal(ws):
    import pty

    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "app", "bench", "--workspace", str(ws.root)),
            *("--variants", "fp32", "--iterations", "3"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=child_fd,
    )
    os.close(child_fd)
    seen = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main_fd)
    assert proc.wait(timeout=120) == 0
    text = seen.decode(errors="replace")
    assert "benchmarking |" in text and "100.0%" in text and "\r" in text
    assert "benchmarking:" not in text  # no plain lines on a terminal
