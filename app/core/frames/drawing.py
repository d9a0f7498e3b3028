"""Draw detections (instance mask, box, label, score) and classifier top-k onto BGR frames,
with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

from app.core.frames.postprocess import Detections, TopK
from app.core.model.spec import ModelSpec

FONT = cv2.FONT_HERSHEY_SIMPLEX
MAX_PLACED = 64  # labels moved off each other per frame; past that a frame is beyond help
MASK_ALPHA = 0.45  # an instance mask's tint: the picture stays readable under it


def _text_scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and line thickness proportional to the frame (readable from 32 px to 8K)."""
    side = min(image.shape[:2])
    scale = max(0.35, side / 900.0)
    return scale, max(1, int(round(scale * 2)))


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


class Placed:
    """Labels drawn so far in one frame, filed by horizontal band (a label spans one or two
    bands of its own height), so a new label is checked against its neighbours only, not
    against every label of a crowded frame (placing runs per frame, for every box)."""

    def __init__(self, band: int = 0) -> None:
        self.band = band  # 0: the height of the first label (all share one font size)
        self.bands: dict[int, list[Rect]] = {}
        self.count = 0

    def _rows(self, rect: Rect) -> range:
        return range(rect[1] // self.band, (rect[3] - 1) // self.band + 1)

    def overlaps(self, rect: Rect) -> bool:
        if not self.count:
            return False
        x0, y0, x1, y1 = rect
        for row in self._rows(rect):
            for b0, b1, b2, b3 in self.bands.get(row, ()):
                if x0 < b2 and b0 < x1 and y0 < b3 and b1 < y1:
                    return True
        return False

    def add(self, rect: Rect) -> None:
        self.band = self.band or max(1, rect[3] - rect[1])
        self.count += 1
        for row in self._rows(rect):
            self.bands.setdefault(row, []).append(rect)


def _place(box: Rect, w: int, h: int, height: int, placed: Placed) -> Rect:
    """Where a w x h label of `box` goes: above its top-left corner as before, unless that
    covers a label already drawn; then inside the top, inside the bottom, or below the box,
    the first that is free (the first choice when none is: crowded beyond help)."""
    x1, y1, _, y2 = box
    first: Rect | None = None
    for y in (y1 - h, y1, y2 - h, y2):
        y = min(max(0, y), max(0, height - h))
        rect = (x1, y, x1 + w, y + h)
        if first is None:
            first = rect
        if not placed.overlaps(rect):
            return rect
    return first  # type: ignore[return-value]


def _label_box(
    image: np.ndarray,
    text: str,
    x: int,
    y: int,
    color,
    scale: float,
    thick: int,
    box: Rect | None = None,
    placed: Placed | None = None,
) -> Rect:
    """Draw `text` on a filled label; with `box` and `placed`, moved off the labels in
    `placed` (see _place), to which its rectangle is added. Returns that rectangle."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    w, h = tw + 4, th + base + 2
    if box is not None and placed is not None and placed.count < MAX_PLACED:
        rect = _place(box, w, h, image.shape[0], placed)
        placed.add(rect)
    else:
        y_top = max(0, y - h)
        rect = (x, y_top, x + w, y_top + h)
    x0, y_top = rect[0], rect[1]
    cv2.rectangle(image, (x0, y_top), (x0 + w, y_top + h), color, -1)
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x0 + 2, y_top + th + 1), FONT, scale, ink, thick, cv2.LINE_AA)
    return rect


def draw_detections(
    image: np.ndarray,
    dets: Detections,
    spec: ModelSpec,
    highlight: np.ndarray | None = None,
    label_rects: list[Rect] | None = None,
) -> np.ndarray:
    """Draw in place and return `image`. `highlight` marks boxes (bool per box) drawn thicker.
    Labels go in the order of `dets` (best first from NMS), each moved off those before it;
    `label_rects`, when given, receives where each label went."""
    scale, thick = _text_scale(image)
    if dets.masks is not None:
        draw_masks(image, dets, spec)
    placed = Placed()
    for i in range(len(dets)):
        x1, y1, x2, y2 = (int(round(v)) for v in dets.boxes[i])
        cid = int(dets.class_ids[i])
        color = spec.color(cid)
        width = thick * 3 if highlight is not None and highlight[i] else thick
        cv2.rectangle(image, (x1, y1), (x2, y2), color, width, cv2.LINE_AA)
        text = f"{spec.label(cid)} {dets.scores[i]:.2f}"
        rect = _label_box(image, text, x1, y1, color, scale, thick, (x1, y1, x2, y2), placed)
        if label_rects is not None:
            label_rects.append(rect)
    return image


def draw_masks(image: np.ndarray, dets: Detections, spec: ModelSpec) -> np.ndarray:
    """Tint each detection's mask pixels with its class colour, worst first so the best
    detection's tint is on top where masks overlap; only the box rectangles are touched."""
    assert dets.masks is not None
    for i in reversed(range(len(dets))):
        x0, y0, x1, y1 = (int(v) for v in dets.masks.rects[i])
        inside = dets.masks.masks[i]
        if not inside.any():
            continue
        region = image[y0:y1, x0:x1]
        color = np.array(spec.color(int(dets.class_ids[i])), np.float32)
        region[inside] = (region[inside] * (1 - MASK_ALPHA) + color * MASK_ALPHA).astype(np.uint8)
    return image


def draw_topk(image: np.ndarray, top: TopK, spec: ModelSpec) -> np.ndarray:
    """Top-k labels with scores in the top-left corner, on a dark band for contrast."""
    scale, thick = _text_scale(image)
    scale = max(0.4, scale * 0.9)
    y = 4
    for cid, score in zip(top.class_ids, top.scores):
        text = f"{spec.label(int(cid))[:40]}  {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
        sub = image[y : y + th + base + 6, 0 : tw + 10]
        sub[...] = (sub * 0.35).astype(np.uint8)
        cv2.putText(image, text, (5, y + th + 2), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
        y += th + base + 8
    return image
