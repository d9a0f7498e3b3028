"""Draw detections (box, label, score) and classifier top-k onto BGR frames, with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

from app.core.frames.postprocess import Detections, TopK
from app.core.model.spec import ModelSpec

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text_scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and line thickness proportional to the frame (readable from 32 px to 8K)."""
    side = min(image.shape[:2])
    scale = max(0.35, side / 900.0)
    return scale, max(1, int(round(scale * 2)))


def _label_box(image: np.ndarray, text: str, x: int, y: int, color, scale: float, thick: int):
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    y_top = max(0, y - th - base - 2)
    cv2.rectangle(image, (x, y_top), (x + tw + 4, y_top + th + base + 2), color, -1)
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y_top + th + 1), FONT, scale, ink, thick, cv2.LINE_AA)


def draw_detections(
    image: np.ndarray,
    dets: Detections,
    spec: ModelSpec,
    highlight: np.ndarray | None = None,
) -> np.ndarray:
    """Draw in place and return `image`. `highlight` marks boxes (bool per box) drawn thicker."""
    scale, thick = _text_scale(image)
    for i in range(len(dets)):
        x1, y1, x2, y2 = (int(round(v)) for v in dets.boxes[i])
        cid = int(dets.class_ids[i])
        color = spec.color(cid)
        width = thick * 3 if highlight is not None and highlight[i] else thick
        cv2.rectangle(image, (x1, y1), (x2, y2), color, width, cv2.LINE_AA)
        _label_box(image, f"{spec.label(cid)} {dets.scores[i]:.2f}", x1, y1, color, scale, thick)
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
