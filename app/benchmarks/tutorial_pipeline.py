"""The tutorials' YOLOX pre/postprocessing, kept as the baseline the app is measured against.

Written the way the well-known notebooks do it on purpose (PIL resize and conversions, a full
IoU matrix, NMS as a Python loop, PIL drawing), so benchmarks compare like with like and tests
can check the app's fast path gives the same boxes as this plain reference.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def tutorial_preprocess(bgr: np.ndarray, size: int = 416) -> tuple[np.ndarray, float]:
    """Letterbox (top-left, pad 114) through PIL, BGR 0..255, NCHW float32."""
    img = Image.fromarray(bgr[:, :, ::-1].copy())  # to PIL (RGB)
    w, h = img.size
    r = min(size / h, size / w)
    resized = img.resize((int(w * r), int(h * r)), Image.BILINEAR)
    canvas = Image.new("RGB", (size, size), (114, 114, 114))
    canvas.paste(resized, (0, 0))
    arr = np.array(canvas)[:, :, ::-1].astype(np.float32)  # back to BGR
    return arr.transpose(2, 0, 1)[None].copy(), r


def _iou_matrix(boxes: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = (x2 - x1) * (y2 - y1)
    ix1 = np.maximum(x1[:, None], x1[None])
    iy1 = np.maximum(y1[:, None], y1[None])
    ix2 = np.minimum(x2[:, None], x2[None])
    iy2 = np.minimum(y2[:, None], y2[None])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    return inter / (area[:, None] + area[None] - inter + 1e-9)


def tutorial_postprocess(
    raw: np.ndarray, ratio: float, size: int = 416, conf: float = 0.3, iou: float = 0.45
) -> list[tuple[np.ndarray, float, int]]:
    """Decode the YOLOX grid with Python loops over strides, full IoU matrix, loop NMS."""
    grids, strides = [], []
    for s in (8, 16, 32):
        g = size // s
        for y in range(g):
            for x in range(g):
                grids.append((x, y))
                strides.append(s)
    grids_a = np.array(grids, np.float32)
    strides_a = np.array(strides, np.float32)[:, None]
    out = raw[0].copy()
    out[:, :2] = (out[:, :2] + grids_a) * strides_a
    out[:, 2:4] = np.exp(out[:, 2:4]) * strides_a
    boxes = (
        np.stack(
            [
                out[:, 0] - out[:, 2] / 2,
                out[:, 1] - out[:, 3] / 2,
                out[:, 0] + out[:, 2] / 2,
                out[:, 1] + out[:, 3] / 2,
            ],
            axis=1,
        )
        / ratio
    )
    scores_all = out[:, 4:5] * out[:, 5:]
    cls = scores_all.argmax(1)
    scores = scores_all.max(1)
    keep = scores > conf
    boxes, scores, cls = boxes[keep], scores[keep], cls[keep]
    order = np.argsort(-scores)
    boxes, scores, cls = boxes[order], scores[order], cls[order]
    ious = _iou_matrix(boxes)
    dets = []
    suppressed = [False] * len(boxes)
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        dets.append((boxes[i], float(scores[i]), int(cls[i])))
        for j in range(i + 1, len(boxes)):
            if cls[j] == cls[i] and ious[i, j] > iou:
                suppressed[j] = True
    return dets


def tutorial_draw(bgr: np.ndarray, dets, labels: list[str]) -> np.ndarray:
    """Draw boxes and labels with PIL, then convert back to a BGR array."""
    img = Image.fromarray(bgr[:, :, ::-1].copy())
    draw = ImageDraw.Draw(img)
    for box, score, cid in dets:
        draw.rectangle([float(v) for v in box], outline=(255, 0, 0), width=2)
        draw.text(
            (float(box[0]), float(box[1])), f"{labels[cid]} {score:.2f}", fill=(255, 255, 255)
        )
    return np.array(img)[:, :, ::-1].copy()
