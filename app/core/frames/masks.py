"""Instance masks of segmentation models, in source pixels: Ultralytics' prototypes (YOLOv8 /
YOLO11 / YOLOv5 -seg: mask = coefficients . prototypes, cropped to the box) and per-detection
mask outputs (MMDeploy: a small map over each box, or one over the whole input).

Each mask is kept only over its box's pixel rectangle (a frame of 40 people would otherwise hold
40 frame-sized masks), and is made in one OpenCV warp from the model's map straight to source
pixels: the letterbox / stretch / crop of `Geometry` and the upsampling are one affine map, so
nothing frame-sized is built. Written here because no library maps these outputs back through
the app's own preprocessing geometry (Ultralytics' `process_mask` does it for its letterbox, on
torch tensors)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.core.frames.preprocess import Geometry


@dataclass
class InstanceMasks:
    """One boolean mask per detection over `rects[i]` (x0, y0, x1, y1, ends exclusive, source
    pixels), the pixel rectangle of the detection's box."""

    rects: np.ndarray  # [n, 4] int
    masks: list[np.ndarray]  # bool [y1 - y0, x1 - x0] each

    def __len__(self) -> int:
        return len(self.masks)

    def take(self, index: np.ndarray) -> InstanceMasks:
        index = np.asarray(index)
        picked = np.flatnonzero(index) if index.dtype == bool else index.reshape(-1)
        return InstanceMasks(self.rects[picked], [self.masks[int(i)] for i in picked])

    def full(self, i: int, height: int, width: int) -> np.ndarray:
        """Mask `i` as a bool [height, width] frame."""
        out = np.zeros((height, width), bool)
        x0, y0, x1, y1 = (int(v) for v in self.rects[i])
        out[y0:y1, x0:x1] = self.masks[i]
        return out

    def iou(self, i: int, other: InstanceMasks, j: int) -> float:
        """IoU of mask `i` and `other`'s mask `j` (1.0 when both are empty)."""
        ra, rb = self.rects[i], other.rects[j]
        x0, y0 = min(ra[0], rb[0]), min(ra[1], rb[1])
        x1, y1 = max(ra[2], rb[2]), max(ra[3], rb[3])
        a = np.zeros((y1 - y0, x1 - x0), bool)
        b = np.zeros_like(a)
        a[ra[1] - y0 : ra[3] - y0, ra[0] - x0 : ra[2] - x0] = self.masks[i]
        b[rb[1] - y0 : rb[3] - y0, rb[0] - x0 : rb[2] - x0] = other.masks[j]
        union = int((a | b).sum())
        return 1.0 if union == 0 else int((a & b).sum()) / union

    def polygon(self, i: int) -> list[list[int]]:
        """The outline of mask `i`'s largest region, source pixels ([] when empty)."""
        found, _ = cv2.findContours(
            self.masks[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        if not found:
            return []
        x0, y0 = int(self.rects[i][0]), int(self.rects[i][1])
        outline = max(found, key=cv2.contourArea).reshape(-1, 2) + np.array([x0, y0])
        return outline.tolist()

    def areas(self) -> np.ndarray:
        return np.array([int(m.sum()) for m in self.masks], np.int64)


def _rects(boxes_src: np.ndarray, geo: Geometry) -> np.ndarray:
    """Pixel rectangles covering source boxes (outward to whole pixels, inside the frame)."""
    if not len(boxes_src):
        return np.zeros((0, 4), np.int64)
    r = np.concatenate([np.floor(boxes_src[:, :2]), np.ceil(boxes_src[:, 2:])], axis=1)
    lim = np.array([geo.src_w, geo.src_h, geo.src_w, geo.src_h])
    return np.clip(r, 0, lim).astype(np.int64)


def _warped(
    maps: list[np.ndarray],
    step: np.ndarray,
    origin: np.ndarray,
    boxes_src: np.ndarray,
    geo: Geometry,
    threshold: float,
) -> InstanceMasks:
    """Masks from maps ([h, w] each) whose cell (u, v) covers model-input pixels from
    origin + step * (u, v) to origin + step * (u + 1, v + 1) (`step`, `origin`: [n, 2] x, y),
    bilinear-sampled at each source pixel's centre, thresholded, and cut to the source box."""
    rects = _rects(boxes_src, geo)
    masks: list[np.ndarray] = []
    scale = np.array([geo.scale_x, geo.scale_y])
    off = np.array([geo.off_x, geo.off_y])
    for i, (x0, y0, x1, y1) in enumerate(rects):
        w, h = int(x1 - x0), int(y1 - y0)
        if w <= 0 or h <= 0 or maps[i].size == 0:
            masks.append(np.zeros((max(h, 0), max(w, 0)), bool))
            continue
        # continuous coordinates: model x = origin + step * (u + 0.5) at cell centre u; source
        # x = (model x + off) / scale; pixel index = continuous - 0.5 (OpenCV samples centres)
        a = step[i] / scale
        b = (origin[i] + step[i] * 0.5 + off) / scale - 0.5 - np.array([x0, y0])
        m = np.array([[a[0], 0.0, b[0]], [0.0, a[1], b[1]]], np.float64)
        plane = cv2.warpAffine(
            maps[i].astype(np.float32, copy=False),
            m,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        inside = plane > threshold
        # the box cut: pixel centres inside the box (its rectangle rounds outward)
        xs = np.arange(x0, x1) + 0.5
        ys = np.arange(y0, y1) + 0.5
        bx1, by1, bx2, by2 = boxes_src[i]
        inside &= ((ys >= by1) & (ys <= by2))[:, None] & ((xs >= bx1) & (xs <= bx2))[None, :]
        masks.append(inside)
    return InstanceMasks(rects, masks)


def prototype_masks(
    coefficients: np.ndarray,
    prototypes: np.ndarray,
    boxes_model: np.ndarray,
    geo: Geometry,
) -> InstanceMasks:
    """Ultralytics' -seg masks: logits = coefficients [n, M] . prototypes [M, h, w] (the
    prototypes span the whole model input), positive logit (sigmoid > 0.5) inside the box.
    Each logit map is computed over its box's prototype cells only, with one cell of margin
    for the interpolation (30 boxes on a 1280 x 720 frame: 14 ms a frame over whole maps)."""
    m, h, w = prototypes.shape
    k = np.array([geo.in_w / w, geo.in_h / h])
    maps, origins = [], []
    for coef, box in zip(coefficients.astype(np.float32), boxes_model):
        u0, v0 = np.clip(np.floor(box[:2] / k).astype(int) - 1, 0, [w, h])
        u1, v1 = np.clip(np.ceil(box[2:] / k).astype(int) + 1, 0, [w, h])
        cells = prototypes[:, v0:v1, u0:u1]
        maps.append((coef @ cells.reshape(m, -1)).reshape(v1 - v0, u1 - u0))
        origins.append((u0 * k[0], v0 * k[1]))
    n = len(maps)
    step, origin = np.tile(k, (n, 1)), np.array(origins, np.float64).reshape(n, 2)
    return _warped(maps, step, origin, geo.to_source(boxes_model), geo, 0.0)


def pasted_masks(
    maps: np.ndarray, boxes_model: np.ndarray, geo: Geometry, threshold: float = 0.5
) -> InstanceMasks:
    """Per-detection mask maps [n, h, w] (probabilities): over the whole model input when they
    have its size, else over each box (MMDeploy's 28 x 28 RoI masks, pasted into the box)."""
    n, h, w = maps.shape
    if (h, w) == (geo.in_h, geo.in_w):
        step, origin = np.ones((n, 2)), np.zeros((n, 2))
    else:
        size = boxes_model[:, 2:] - boxes_model[:, :2]
        step, origin = size / np.array([w, h]), boxes_model[:, :2]
    return _warped(list(maps), step, origin, geo.to_source(boxes_model), geo, threshold)
