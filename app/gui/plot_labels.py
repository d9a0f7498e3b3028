"""Where the names of a scatter plot's points go, so that points of nearly the same latency and
accuracy (fp32 and fp32-prep, say) do not print their names on top of each other."""

from __future__ import annotations

ABOVE, BELOW = (0.0, 1.0), (0.0, 0.0)  # pyqtgraph TextItem anchors: right of the point


def label_anchors(xs: list[float], ys: list[float]) -> list[tuple[float, float]]:
    """An anchor per point: above it, unless a point placed before (left to right) put its
    label above within about a label's reach (12% of the x range, 8% of the y range), then
    below; two names near one spot thus go one above, one below."""
    if not xs:
        return []
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float, tuple[float, float]]] = []
    anchors: list[tuple[float, float]] = [ABOVE] * len(xs)
    for i in sorted(range(len(xs)), key=lambda k: xs[k]):
        near = [
            a for x, y, a in placed
            if abs(xs[i] - x) < 0.12 * span_x and abs(ys[i] - y) < 0.08 * span_y
        ]  # fmt: skip
        anchors[i] = BELOW if ABOVE in near and BELOW not in near else ABOVE
        placed.append((xs[i], ys[i], anchors[i]))
    return anchors
