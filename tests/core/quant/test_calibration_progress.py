"""Calibration progress that tells the truth after the last image: the histogram and threshold
work of Percentile/Entropy calibration reports its own steps, and progress never goes back."""

from __future__ import annotations

import shutil
import time

import pytest

from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from tests.assets import IMAGES, YOLOX, needs_assets

pytestmark = needs_assets


def test_progress_is_monotonic_and_the_ranges_phase_reports_steps(tmp_path):
    """Percentile on YOLOX-Nano: its histogram pass took as long as reading the images."""
    folder = tmp_path / "calib"
    folder.mkdir()
    for path in sorted((IMAGES / "coco-train128" / "images").glob("*.jpg"))[:6]:
        shutil.copy(path, folder / path.name)
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    seen: list[tuple[float, str, float]] = []
    calibrate(
        ws,
        folder,
        method="percentile",
        progress=lambda f, m: seen.append((f, m, time.perf_counter())),
    )
    fractions = [f for f, _, _ in seen]
    assert fractions == sorted(fractions), seen
    assert fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in fractions)
    last_image = max(i for i, (_, m, _) in enumerate(seen) if m.startswith("6/6 images"))
    assert seen[last_image][0] == pytest.approx(0.8)  # reading ends at 80%, not 95%
    ranges = [(f, m) for f, m, _ in seen[last_image + 1 :] if m.startswith("computing")]
    assert len(ranges) >= 5, seen  # the histogram pass and the thresholds both report
    assert any("histograms" in m for _, m in ranges) and any("thresholds" in m for _, m in ranges)
    steps = [f for f, _ in ranges]
    assert steps[0] == pytest.approx(0.8) and steps[-1] == pytest.approx(0.95)
    assert len(set(steps)) == len(steps)  # each step moves the bar
    assert "starting" in ranges[0][1] and all(" s left" in m for _, m in ranges[1:])
