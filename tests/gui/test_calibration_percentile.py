"""The Calibration panel's percentile value: declared default, only for the percentile method,
kept inside (0, 100], and the value calibrate() really runs with."""

from __future__ import annotations

import json

from app.core import defaults
from app.gui.panels.calibration import CalibrationPanel


def test_percentile_field_follows_the_method(qtbot, state, make_panel):
    panel = make_panel(CalibrationPanel, state)
    assert panel.percentile.value() == defaults.PERCENTILE
    panel.method.setCurrentText("percentile")
    assert panel.percentile.isEnabled()
    for other in ("minmax", "entropy", "distribution"):
        panel.method.setCurrentText(other)
        assert not panel.percentile.isEnabled(), other
    panel.percentile.setValue(0.0)
    assert 0.0 < panel.percentile.value() <= 0.001  # zero is not a percentile
    panel.percentile.setValue(150.0)
    assert panel.percentile.value() == 100.0


def test_calibration_runs_with_the_chosen_percentile(qtbot, state, paths, make_panel):
    panel = make_panel(CalibrationPanel, state)
    panel.folder.setText(str(paths["images"]))
    panel.count.setValue(3)
    panel.method.setCurrentText("percentile")
    panel.percentile.setValue(99.9)
    assert panel.start()
    qtbot.waitUntil(lambda: panel.job is None, timeout=120000)
    assert panel.result is not None, panel.messages.text()
    meta = json.loads((panel.result.folder / "meta.json").read_text())
    assert meta["method"] == "percentile"
    assert meta["settings"]["percentile"] == 99.9
    assert panel.setting("percentile", None) == 99.9  # remembered for the next session
