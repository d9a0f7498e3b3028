"""Two annotated frames side by side, each under a title band, with a caption band below."""

from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
GAP = 8  # dark pixels between the two images, so the boxes of one never seem to cross over


def _band(width: int, text: str, scale: float, thick: int, color=(40, 40, 40)) -> np.ndarray:
    """A band as wide as `width` with `text` in white, cut with an ellipsis if it is too long."""
    (_, th), base = cv2.getTextSize("Ag", FONT, scale, thick)
    band = np.empty((th + base + 12, width, 3), np.uint8)
    band[...] = color
    while text and cv2.getTextSize(text, FONT, scale, thick)[0][0] > width - 12:
        text = text[:-2] + "…" if len(text) > 2 else ""
    # OpenCV's fonts have no ellipsis glyph: three dots read the same
    text = text.replace("…", "...")
    cv2.putText(band, text, (6, th + 5), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return band


def side_by_side(
    left: np.ndarray, right: np.ndarray, titles: tuple[str, str], caption: str = ""
) -> np.ndarray:
    """One BGR image: `left` and `right` (same frame, two variants) under their titles, and
    `caption` (what differs) across the bottom. Sizes may differ; the shorter is padded."""
    h = max(left.shape[0], right.shape[0])
    scale = max(0.45, min(h, 1080) / 900.0)
    thick = max(1, int(round(scale * 1.6)))
    cols = []
    for image, title in ((left, titles[0]), (right, titles[1])):
        pad = np.zeros((h - image.shape[0], image.shape[1], 3), np.uint8)
        body = np.vstack([image, pad]) if pad.shape[0] else image
        cols.append(np.vstack([_band(image.shape[1], title, scale, thick), body]))
    gap = np.zeros((cols[0].shape[0], GAP, 3), np.uint8)
    row = np.hstack([cols[0], gap, cols[1]])
    if not caption:
        return row
    return np.vstack([row, _band(row.shape[1], caption, scale * 0.9, thick, (20, 20, 90))])
