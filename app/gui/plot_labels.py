"""Where the names of a scatter plot's points go, so that points of nearly the same latency and
accuracy (fp32 and fp32-prep, say) do not print their names on top of each other."""

from __future__ import annotations

from typing import Any

ABOVE, BELOW = (0.0, 1.0), (0.0, 0.0)  # pyqtgraph TextItem anchors: right of the point
SHOWN_SPANS = 1.6  # the Results plot shows 1.6 times the points' x span (`ResultsPanel._fit`)


def label_reach(names: list[str], plot: Any) -> list[float]:
    """How far right of its point each name reaches, as a fraction of the points' x span, in
    the plot's font and at its current width (a name with its backend, "fp32-prep ·
    openvino-cpu", covers a quarter of a 1000-pixel window)."""
    from PySide6.QtGui import QFontMetrics
    from PySide6.QtWidgets import QApplication

    metrics = QFontMetrics(QApplication.font())
    view_px = max(plot.getViewBox().width(), 200.0)  # 0 before the tab was first shown
    return [SHOWN_SPANS * metrics.horizontalAdvance(name) / view_px for name in names]


def label_anchors(
    xs: list[float], ys: list[float], reach: list[float] | None = None
) -> list[tuple[float, float]]:
    """An anchor per point: above it, unless a point placed before (left to right) put its
    label above and that label reaches this point (`reach`: each label's width as a fraction
    of the x span, 12% when not given) within 8% of the y range, then below; two names near
    one spot thus go one above, one below."""
    if not xs:
        return []
    reach = reach or [0.12] * len(xs)
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float, float, tuple[float, float]]] = []
    anchors: list[tuple[float, float]] = [ABOVE] * len(xs)
    for i in sorted(range(len(xs)), key=lambda k: xs[k]):
        near = [
            a for x, y, r, a in placed
            if xs[i] - x < r * span_x and abs(ys[i] - y) < 0.08 * span_y
        ]  # fmt: skip
        anchors[i] = BELOW if ABOVE in near and BELOW not in near else ABOVE
        placed.append((xs[i], ys[i], reach[i], anchors[i]))
    return anchors
