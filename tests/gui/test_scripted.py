"""`int8-studio gui` scripted mode: plays N frames, writes a screenshot and a JSON report.

Run as a separate process, as a script or CI job would: the scripted mode owns its event loop
and quits the application at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]


def run_scripted(args: list[str]) -> None:
    """`python -m app.gui.scripted ARGS` in its own process, offscreen; it must exit 0."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "app.gui.scripted", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_scripted_live_writes_screenshot_and_report(qtbot, paths, tmp_path):
    """Also runs a calibration in the background worker while the video plays, and times the
    runner's own infer-only throughput afterwards (the report's ratio)."""
    shot, report = tmp_path / "live.png", tmp_path / "live.json"
    args = [
        "--model",
        str(paths["model"]),
        "--source",
        str(paths["video"]),
        "--frames",
        "24",
        "--screenshot",
        str(shot),
        "--report",
        str(report),
        "--exit-after",
        "--workspace",
        str(tmp_path / "ws"),
        "--background-calibration",
        str(paths["images"]),
        "--background-count",
        "3",
        "--throughput-iterations",
        "5",
    ]
    run_scripted(args)
    image = QImage(str(shot))
    assert not image.isNull() and image.width() >= 800
    data = json.loads(report.read_text())
    for key in ("frames_shown", "frames_dropped", "fps", "gui_blocked_max_ms", "stage_p50_ms"):
        assert key in data
    assert data["frames_shown"] >= 1
    assert data["frames_shown"] + data["frames_dropped"] <= 24
    assert set(data["stage_p50_ms"]) >= {"preprocess_ms", "infer_ms", "postprocess_ms"}
    assert data["runners"][0]["provider"] == "CPUExecutionProvider"
    # played at the video's own frame rate: FPS is the source's, so no throughput share
    assert data["backend_infer_fps"] > 0 and "fps_vs_backend" not in data
    assert "headless_pipeline_fps_windows" not in data  # nor a paced headless run
    assert "--fast" in data["fps_vs_backend_note"]
    assert "over_50ms" in data["gui_stalls"]
    assert "images" in data["background_calibration"], data["background_calibration"]


def test_scripted_fast_rounds_give_the_throughput_share(paths, tmp_path):
    """As fast as possible, two rounds: every frame processed (none dropped), the share of the
    runner's own throughput per round and its median, the share of the headless pipeline's,
    and where the CPU went per frame."""
    report = tmp_path / "fast.json"
    args = ["--model", str(paths["model"]), "--source", str(paths["video"]), "--frames", "12"]
    args += ["--rounds", "2", "--fast", "--report", str(report), "--exit-after"]
    args += ["--workspace", str(tmp_path / "ws"), "--throughput-iterations", "5"]
    run_scripted(args)
    data = json.loads(report.read_text())
    assert data["frames_processed"] == 24 and data["frames_dropped"] == 0
    assert data["frames_shown"] + data["frames_not_shown"] == 24
    assert len(data["fps_vs_backend_rounds"]) == 2 and data["fps_vs_backend"] > 0
    assert len(data["backend_infer_fps_windows"]) == 3
    # and of the same pipeline run headless on the same 12 frames (the GUI's own cost)
    assert len(data["headless_pipeline_fps_windows"]) == 3
    assert all(x > 0 for x in data["headless_pipeline_fps_windows"])
    assert len(data["fps_vs_headless_pipeline_rounds"]) == 2
    assert data["cpu_ms_per_frame"]["process"] > 0
    assert len(data["gui_stalls"]["round_starts_s"]) == 2
