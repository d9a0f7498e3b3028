"""Detection agreement between two variants on one frame: which boxes one finds and the other
misses, or labels differently (greedy same-class matching at an IoU threshold)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.core.frames.postprocess import Detections


@dataclass
class FrameAgreement:
    missing_a: np.ndarray  # bool per box of A: no same-class box in B with IoU >= threshold
    missing_b: np.ndarray
    class_diff_a: np.ndarray  # bool per box of A: overlaps a B box of another class only
    class_diff_b: np.ndarray
    matched: int
    total: int  # len(A) + len(B)
    # [matched, 2] index pairs (box of A, box of B) and their IoU: what the comparison reports
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    pair_iou: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def score(self) -> float:
        """2 * matched / (len(A) + len(B)); 1.0 when neither found anything."""
        return 1.0 if self.total == 0 else 2.0 * self.matched / self.total

    def highlight_a(self) -> np.ndarray:
        return self.missing_a | self.class_diff_a

    def highlight_b(self) -> np.ndarray:
        return self.missing_b | self.class_diff_b


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of x1,y1,x2,y2 boxes."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def compare_detections(a: Detections, b: Detections, iou: float = 0.5) -> FrameAgreement:
    """Greedy one-to-one matching of same-class boxes (best score first) at `iou`."""
    ious = box_iou(a.boxes, b.boxes)
    same = a.class_ids[:, None] == b.class_ids[None, :]
    matched_a = np.zeros(len(a), bool)
    matched_b = np.zeros(len(b), bool)
    pairs: list[tuple[int, int]] = []
    for i in np.argsort(-a.scores):
        if len(b) == 0:
            break
        cand = np.where(same[i] & ~matched_b & (ious[i] >= iou), ious[i], -1.0)
        j = int(cand.argmax())
        if cand[j] >= iou:
            matched_a[i] = matched_b[j] = True
            pairs.append((int(i), j))
    overlap = ious >= iou
    class_diff_a = ~matched_a & (overlap & ~same).any(axis=1) if len(b) else np.zeros(len(a), bool)
    class_diff_b = ~matched_b & (overlap & ~same).any(axis=0) if len(a) else np.zeros(len(b), bool)
    return FrameAgreement(
        missing_a=~matched_a & ~class_diff_a,
        missing_b=~matched_b & ~class_diff_b,
        class_diff_a=class_diff_a,
        class_diff_b=class_diff_b,
        matched=int(matched_a.sum()),
        total=len(a) + len(b),
        pairs=np.asarray(pairs, np.int64).reshape(-1, 2),
        pair_iou=np.asarray([ious[i, j] for i, j in pairs], np.float32),
    )
