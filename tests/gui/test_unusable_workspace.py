"""A workspace folder that cannot be made (a file in the way, a full or read-only disk) is said in
the panels when a model opens, not raised out of their spec_changed slots."""

from __future__ import annotations

import copy

from app.gui.panels.precision import PrecisionPanel
from app.gui.panels.variants import VariantsPanel
from app.gui.state import AppState


def test_opening_a_model_whose_workspace_cannot_be_made_says_so_inline(
    tmp_path, yolox_spec, make_panel
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the workspace folder should go\n")
    state = AppState(workspace_root=blocker / "ws")
    variants = make_panel(VariantsPanel, state)
    precision = make_panel(PrecisionPanel, state)
    state.set_spec(copy.deepcopy(yolox_spec))  # pytest-qt fails the test on an exception in a slot
    shown = variants.messages.text("workspace") + precision.messages.text("calibration")
    assert "cannot use this workspace folder" in shown, shown
    assert str(blocker) in shown
