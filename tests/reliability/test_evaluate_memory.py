"""Reliability (issue 18, fault 3): `evaluate` keeps no decoded image, so its peak memory does
not grow with the number of images (all of them decoded at once took 396 MB for 256 photos and
652 MB for 512)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import IMAGES, RESNET8, needs_assets
from tests.reliability.helpers import ROOT

pytestmark = needs_assets
PHOTOS = sorted((IMAGES / "coco-train128").rglob("*.jpg"))

PEAK_RSS = """
import resource, sys
from pathlib import Path
from app.backends.factory import make_runner
from app.core.eval.evaluate import evaluate
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
ws = Workspace.for_model(inspect_model(sys.argv[1]), Path(sys.argv[2]))
report = evaluate(ws, sys.argv[3], variants=["fp32"], runner_factory=make_runner)
assert report["images"] == int(sys.argv[4]), report["images"]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _peak_rss_mb(tmp_path: Path, count: int) -> int:
    """Peak RSS (MB) of a fresh interpreter evaluating ResNet-8 on `count` COCO photos (links
    to the real files; a small model, so decoded photos dominate what could grow)."""
    folder = tmp_path / f"photos{count}"
    folder.mkdir()
    for i in range(count):
        os.symlink(PHOTOS[i % len(PHOTOS)], folder / f"{i:04d}.jpg")
    proc = subprocess.run(
        [
            *(sys.executable, "-c", PEAK_RSS, str(RESNET8)),
            *(str(tmp_path / f"ws{count}"), str(folder), str(count)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.strip().splitlines()[-1])


def test_evaluate_memory_is_flat_in_the_number_of_images(tmp_path):
    few, many = _peak_rss_mb(tmp_path, 16), _peak_rss_mb(tmp_path, 256)
    # 240 more decoded COCO photos are ~210 MB; keeping none, the difference is noise
    print(f"peak RSS: {few} MB for 16 photos, {many} MB for 256")
    assert many - few < 60, (few, many)
