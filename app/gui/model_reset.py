"""What belonged to the previous model is cleared when another one opens.

Each panel keeps its own view of the current model (calibration results, the last frame,
inline banners, the runner in the status bar); `clear_previous_model` clears them all, so
nothing of the old model is shown under the new one's name. Precision analysis and results
reload from the new workspace on `spec_changed` themselves.
"""

from __future__ import annotations

from typing import Any

from app.core.errors import UserError
from app.core.model.spec import ModelSpec
from app.core.model.staleness import latest_calibration_key


def clear_previous_model(window: Any, spec: ModelSpec | None) -> None:
    """Runs on `AppState.model_changed` (before panels see the new spec)."""
    window.setWindowTitle("INT8 Studio")  # the new model's name follows on spec_changed
    window.backend_label.setText("no runner")
    for panel in window.panels:
        panel.messages.clear()
    _clear_calibration(window.calibration_panel, window.state if spec else None)
    for panel in (window.live_panel, window.compare_panel):
        panel.stop()
        for view in panel.views():
            view.set_image(None)
        panel.reset_views()


def _clear_calibration(panel: Any, state: Any) -> None:
    panel.result = None
    panel.thumbs.clear()
    panel.thumbs_caption.setText("")
    panel.skipped.clear()
    text = "Not calibrated yet."
    if state is not None:
        try:  # the new model's own calibration, made earlier, is still there to use
            key = latest_calibration_key(state.workspace())
        except (UserError, OSError):
            key = None
        if key:
            text = f"Calibrated earlier (key {key}); calibrate again to change it."
    panel.status.setText(text)
