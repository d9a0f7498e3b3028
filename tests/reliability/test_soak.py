"""Reliability (issue 8), long runs: a short soak (300 frames of a looped video through
`run_live`, drawing on) must not grow in memory or queue up frames. The owner runs the full
20,000-frame soak with `python -m app.benchmarks.soak`."""

from __future__ import annotations

import json
import subprocess
import sys

from app.benchmarks.soak import main as soak_main
from app.benchmarks.soak import rss_kb
from tests.conftest import RESNET8, VIDEOS, needs_assets
from tests.reliability.helpers import ROOT

pytestmark = needs_assets
VIDEO = VIDEOS / "bottle-detection.mp4"
FEW_MB = 6 * 1024  # KiB


def test_soak_300_frames_keeps_memory_flat_and_queue_at_most_2(tmp_path):
    report = tmp_path / "soak.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.benchmarks.soak",
            "--model",
            str(RESNET8),
            "--video",
            str(VIDEO),
            "--frames",
            "300",
            "--report-every",
            "50",
            "--window",
            "100",
            "--clip-frames",
            "100",
            "--json",
            str(report),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["frames"] == 300 and data["dropped"] == 0
    assert data["provider"] == "CPUExecutionProvider"
    assert data["max_queue"] <= 2
    samples = [s["kb"] for s in data["rss_kb"]["samples"]]
    assert [s["frame"] for s in data["rss_kb"]["samples"]] == list(range(50, 301, 50))
    warm, end = data["rss_kb"]["warm"], data["rss_kb"]["end"]
    assert end - warm < FEW_MB, data["rss_kb"]
    assert max(samples) - warm < FEW_MB, data["rss_kb"]
    for window in ("first", "last"):
        assert data[window]["frames"] == 100
        for metric in ("infer_ms", "total_ms"):
            p50, p99 = data[window][metric]["p50"], data[window][metric]["p99"]
            assert 0 < p50 <= p99
    # the printed table names both windows and the memory growth
    assert "first 100" in proc.stdout and "last 100" in proc.stdout
    assert "rss growth after warm-up:" in proc.stdout


def test_soak_refuses_a_missing_video_in_one_line(tmp_path, capsys):
    assert soak_main(["--model", str(RESNET8), "--video", str(tmp_path / "nope.mp4")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"soak: error: {tmp_path / 'nope.mp4'}: no such "
        "video file"
    )


def test_rss_reader_reads_this_process():
    assert rss_kb() > 10_000
