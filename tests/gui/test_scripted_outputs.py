"""The scripted GUI's outputs (issue 18): a compare run's report has the agreement and the files
skipped; a report or screenshot that cannot be written (a full disk, through RLIMIT_FSIZE in a
subprocess) ends the process with exit 2 and one line naming the file, leaving nothing behind.
It used to hang for ever (report) or leave a 0-byte PNG and exit 0 (screenshot)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.assets import COCO_DEV64, VIDEO, YOLOX
from tests.reliability.helpers import file_size_limit

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 1024  # bytes per file: the report (~2 KB) and any PNG are larger


def scripted(args: list[str], limit: int | None = None) -> subprocess.CompletedProcess:
    """`python -m app.gui.scripted ARGS` offscreen, optionally on a 'full disk'."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "app.gui.scripted", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,  # the old code never returned
        preexec_fn=file_size_limit(limit) if limit else None,
    )


def ready_workspace(root: Path) -> Path:
    """The model's workspace made beforehand: only the outputs meet the full disk."""
    from app.core.model.inspection import inspect_model
    from app.core.model.workspace import Workspace

    Workspace.for_model(copy.deepcopy(inspect_model(YOLOX)), root)
    return root


def live_args(tmp_path: Path) -> list[str]:
    ws = ready_workspace(tmp_path / "ws")
    return [
        *("--model", str(YOLOX), "--source", str(VIDEO), "--frames", "3", "--fast"),
        *("--throughput-iterations", "0", "--exit-after", "--workspace", str(ws)),
    ]


def errors(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def test_a_report_on_a_full_disk_exits_2_naming_the_file(assets, tmp_path):
    report = tmp_path / "out" / "report.json"
    done = scripted([*live_args(tmp_path), "--report", str(report)], limit=LIMIT)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = errors(done)
    assert len(lines) == 1 and str(report) in lines[0] and "report" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert list(report.parent.iterdir()) == []  # no report, no .part file


def test_a_screenshot_on_a_full_disk_exits_2_and_leaves_no_empty_png(assets, tmp_path):
    shot = tmp_path / "out" / "window.png"
    report = tmp_path / "report.json"
    args = [*live_args(tmp_path), "--screenshot", str(shot), "--report", str(report)]
    done = scripted(args, limit=16 << 10)  # the ~2 KB report fits, a window's PNG does not
    assert done.returncode == 2, done.stderr[-2000:]
    lines = errors(done)
    assert len(lines) == 1 and str(shot) in lines[0] and "screenshot" in lines[0], done.stderr
    assert not shot.exists() and list(shot.parent.iterdir()) == []
    assert json.loads(report.read_text())["frames_processed"] == 3  # the report still came


def test_a_compare_report_has_the_agreement_and_the_skipped_files(assets, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((COCO_DEV64 / "images").glob("*.jpg"))[:2]:
        shutil.copy(src, folder / src.name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    report = tmp_path / "compare.json"
    args = [
        *("--model", str(YOLOX), "--source", str(folder), "--variants", "fp32,fp32", "--fast"),
        *("--exit-after", "--workspace", str(tmp_path / "ws"), "--report", str(report)),
    ]
    done = scripted(args)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["frames_processed"] == 2
    assert data["agreement"] == 1.0  # the model against itself
    assert data["comparison"]["frames"] == 2 and data["comparison"]["disagreeing_frames"] == 0
    assert data["comparison"]["matched"] > 0
    assert [s["source"] for s in data["skipped"]] == [str(folder / "broken.jpg")]
    assert data["skipped"][0]["reason"]


def test_a_folder_as_report_is_refused_before_the_run(assets, tmp_path):
    done = scripted([*live_args(tmp_path), "--report", str(tmp_path)])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path}: is a folder; name a file for --report"
    ]
