"""Comparing two variants frame by frame: what one finds that the other misses, labels
differently, places elsewhere or scores differently, and the running summary over a run.

The one comparison behind `int8-studio compare` and the GUI's Compare view: both feed each
frame's two results to `Comparison.add` and read the same per-frame record and summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.eval.agreement import compare_detections
from app.core.frames.pipeline import FrameResult
from app.core.model.spec import ModelSpec

MATCH_IOU = 0.5  # boxes of the same class overlapping at least this much are the same object
# a matched pair whose instance masks overlap less than this is drawn differently enough to
# show (segmentation models): counted, highlighted and written out as a disagreement
MASK_DIFFERS = 0.75


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass
class FrameDiff:
    """How variant B differs from variant A (the reference) on one frame."""

    source: str
    frame: int
    boxes_a: int = 0  # detections (or 1 top class) per side
    boxes_b: int = 0
    matched: int = 0  # same-class pairs at IoU >= the match threshold
    total: int = 0  # boxes of both sides (2 per frame for classifiers)
    missed: int = 0  # found by A, nothing of B there: B missed them
    extra: int = 0  # found by B only
    other_class: int = 0  # A's boxes that B finds with another class (classifiers: top-1)
    mask_differs: int = 0  # matched pairs whose masks overlap under MASK_DIFFERS (IoU)
    ious: list[float] = field(default_factory=list)  # per matched pair
    score_diffs: list[float] = field(default_factory=list)  # |score A - score B| per pair
    mask_ious: list[float] = field(default_factory=list)  # per pair, where both have masks
    items: list[dict[str, Any]] = field(default_factory=list)  # each disagreement, for JSON
    # bool per box of each side: drawn thick (no same-class partner on the other side)
    highlight_a: np.ndarray | None = None
    highlight_b: np.ndarray | None = None

    @property
    def score(self) -> float:
        """2 * matched / all boxes of both sides (Dice); 1.0 when neither found anything."""
        return 1.0 if self.total == 0 else 2.0 * self.matched / self.total

    @property
    def disagrees(self) -> bool:
        return bool(self.missed or self.extra or self.other_class or self.mask_differs)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "frame": self.frame,
            "agreement": round(self.score, 4),
            "boxes_a": self.boxes_a,
            "boxes_b": self.boxes_b,
            "matched": self.matched,
            "missed": self.missed,
            "extra": self.extra,
            "other_class": self.other_class,
            "mask_differs": self.mask_differs,
            "mean_iou": _r(np.mean(self.ious)) if self.ious else None,
            "min_iou": _r(min(self.ious)) if self.ious else None,
            "max_score_diff": _r(max(self.score_diffs)) if self.score_diffs else None,
            "mean_mask_iou": _r(np.mean(self.mask_ious)) if self.mask_ious else None,
            "disagreements": self.items,
        }


def _box_item(kind: str, spec: ModelSpec | None, cid: int, score: float, box) -> dict[str, Any]:
    return {
        "kind": kind,
        "label": spec.label(cid) if spec is not None else str(cid),
        "class_id": cid,
        "score": _r(score),
        "box": [round(float(v), 1) for v in box],
    }


def diff_frame(
    source: str,
    frame: int,
    a: FrameResult,
    b: FrameResult,
    spec: ModelSpec | None = None,
    iou: float = MATCH_IOU,
) -> FrameDiff:
    """One frame's record: detections matched greedily by class and IoU, classifiers by top-1."""
    out = FrameDiff(source, frame)
    if a.detections is not None and b.detections is not None:
        da, db = a.detections, b.detections
        agree = compare_detections(da, db, iou)
        out.boxes_a, out.boxes_b = len(da), len(db)
        out.matched, out.total = agree.matched, agree.total
        out.missed = int(agree.missing_a.sum())
        out.extra = int(agree.missing_b.sum())
        out.other_class = int(agree.class_diff_a.sum())
        out.ious = [float(v) for v in agree.pair_iou]
        out.score_diffs = [abs(float(da.scores[i]) - float(db.scores[j])) for i, j in agree.pairs]
        out.highlight_a, out.highlight_b = agree.highlight_a(), agree.highlight_b()
        if da.masks is not None and db.masks is not None:
            out.mask_ious = [da.masks.iou(i, db.masks, j) for i, j in agree.pairs]
            for (i, j), m_iou in zip(agree.pairs, out.mask_ious):
                if m_iou < MASK_DIFFERS:
                    out.mask_differs += 1
                    out.highlight_a[i] = out.highlight_b[j] = True
                    item = _box_item("mask_differs", spec, int(da.class_ids[i]), da.scores[i],
                                     da.boxes[i])  # fmt: skip
                    out.items.append(item | {"mask_iou": _r(m_iou)})
        for kind, mask, d in (
            ("missed", agree.missing_a, da),
            ("other_class", agree.class_diff_a, da),
            ("extra", agree.missing_b, db),
            ("other_class_b", agree.class_diff_b, db),
        ):
            for i in np.flatnonzero(mask):
                cid = int(d.class_ids[i])
                out.items.append(_box_item(kind, spec, cid, d.scores[i], d.boxes[i]))
    elif a.top is not None and b.top is not None and len(a.top) and len(b.top):
        ca, cb = int(a.top.class_ids[0]), int(b.top.class_ids[0])
        out.boxes_a = out.boxes_b = 1
        out.total = 2  # one "box" per side: a pair that agrees is one match out of two
        if ca == cb:
            out.matched = 1
            out.score_diffs = [abs(float(a.top.scores[0]) - float(b.top.scores[0]))]
        else:
            out.other_class = 1
            label = spec.label if spec is not None else str
            out.items.append(
                {
                    "kind": "other_class",
                    "label_a": label(ca),
                    "label_b": label(cb),
                    "score_a": _r(a.top.scores[0]),
                    "score_b": _r(b.top.scores[0]),
                }
            )
    return out


class Comparison:
    """The running comparison of two variants: feed it each frame's two results."""

    def __init__(self, spec: ModelSpec | None = None, iou: float = MATCH_IOU) -> None:
        self.spec = spec
        self.iou = iou
        self.frames = 0
        self.disagreeing = 0  # frames with at least one missed, extra or other-class box
        self.matched = 0
        self.total = 0
        self.missed = 0
        self.extra = 0
        self.other_class = 0
        self.mask_differs = 0
        self.highlighted = 0  # boxes drawn thick, both sides together
        self._iou_sum = 0.0
        self._iou_min: float | None = None
        self._pairs = 0
        self._score_diff_sum = 0.0
        self._score_diff_max: float | None = None
        self._score_pairs = 0
        self._mask_iou_sum = 0.0
        self._mask_iou_min = 1.0
        self._mask_pairs = 0
        self._mask_low = 0  # pairs under 0.9

    def add(self, source: str, frame: int, a: FrameResult, b: FrameResult) -> FrameDiff:
        """Compare one frame and count it; returns the frame's record."""
        diff = diff_frame(source, frame, a, b, self.spec, self.iou)
        self.frames += 1
        self.disagreeing += int(diff.disagrees)
        self.matched += diff.matched
        self.total += diff.total
        self.missed += diff.missed
        self.extra += diff.extra
        self.other_class += diff.other_class
        self.mask_differs += diff.mask_differs
        for mask in (diff.highlight_a, diff.highlight_b):
            self.highlighted += int(mask.sum()) if mask is not None else 0
        if diff.ious:
            self._iou_sum += sum(diff.ious)
            self._pairs += len(diff.ious)
            low = min(diff.ious)
            self._iou_min = low if self._iou_min is None else min(self._iou_min, low)
        if diff.mask_ious:
            self._mask_iou_sum += sum(diff.mask_ious)
            self._mask_iou_min = min(self._mask_iou_min, *diff.mask_ious)
            self._mask_pairs += len(diff.mask_ious)
            self._mask_low += sum(v < 0.9 for v in diff.mask_ious)
        if diff.score_diffs:
            self._score_diff_sum += sum(diff.score_diffs)
            self._score_pairs += len(diff.score_diffs)
            high = max(diff.score_diffs)
            self._score_diff_max = (
                high if self._score_diff_max is None else max(self._score_diff_max, high)
            )
        return diff

    @property
    def agreement(self) -> float:
        """Over every frame so far: 2 * matched pairs / all boxes of both sides (Dice)."""
        return 1.0 if self.total == 0 else 2.0 * self.matched / self.total

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "disagreeing_frames": self.disagreeing,
            "agreement": round(self.agreement, 4),
            "matched": self.matched,
            "missed": self.missed,
            "extra": self.extra,
            "other_class": self.other_class,
            "match_iou": self.iou,
            "mean_iou": _r(self._iou_sum / self._pairs) if self._pairs else None,
            "min_iou": _r(self._iou_min),
            "mean_score_diff": (
                _r(self._score_diff_sum / self._score_pairs) if self._score_pairs else None
            ),
            "max_score_diff": _r(self._score_diff_max),
            **self._mask_summary(),
        }

    @property
    def mask_iou(self) -> float | None:
        """Mean IoU of the instance masks of matched boxes so far (segmentation models)."""
        return self._mask_iou_sum / self._mask_pairs if self._mask_pairs else None

    def _mask_summary(self) -> dict[str, Any]:
        """Instance masks of matched boxes (segmentation models): how alike B draws them."""
        if not self._mask_pairs:
            return {}
        return {
            "mask_pairs": self._mask_pairs,
            "mean_mask_iou": _r(self.mask_iou),
            "min_mask_iou": _r(self._mask_iou_min),
            "mask_iou_below_0_9": self._mask_low,
            "mask_differs": self.mask_differs,
            "mask_differs_iou": MASK_DIFFERS,
        }
