"""COCO box matching done once per image, so mAP can be re-accumulated on any weighting of the
images (a bootstrap resample) without evaluating the detections again.

faster-coco-eval keeps its per-image results in C++ where Python cannot read them, and it can
only evaluate a *set* of image ids, not a resample in which an image appears twice; evaluating
each resample from scratch cost about as much as the evaluation itself, times 200. This is the
pycocotools algorithm (evaluateImg + accumulate for area "all", 100 detections per image and
class, IoU 0.50:0.05:0.95, 101 recall points), split at the point where images are summed, so
a resample costs only the accumulation. tests/core/eval/test_bootstrap.py checks it against
faster-coco-eval on real detections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DET = 100


def _iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' maskUtils.iou for xywh boxes: a crowd box counts intersection over the
    detection's own area."""
    if not len(dt) or not len(gt):
        return np.zeros((len(dt), len(gt)))
    d1, d2 = dt[:, None, :2], dt[:, None, :2] + dt[:, None, 2:]
    g1, g2 = gt[None, :, :2], gt[None, :, :2] + gt[None, :, 2:]
    inter = np.clip(np.minimum(d2, g2) - np.maximum(d1, g1), 0, None).prod(axis=2)
    area_d = dt[:, 2] * dt[:, 3]
    union = area_d[:, None] + (gt[:, 2] * gt[:, 3])[None, :] - inter
    union = np.where(crowd[None, :], area_d[:, None], union)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(ious: np.ndarray, ignore: np.ndarray, crowd: np.ndarray):
    """pycocotools' greedy matching of score-sorted detections to ignore-sorted ground truth:
    (matched, matched-an-ignored-box) per IoU threshold and detection."""
    n_t, n_d, n_g = len(IOU_THRESHOLDS), ious.shape[0], ious.shape[1]
    matched = np.zeros((n_t, n_d), bool)
    ignored = np.zeros((n_t, n_d), bool)
    for t, thr in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(n_g, bool)
        for d in range(n_d):
            best, m = min(thr, 1 - 1e-10), -1
            for g in range(n_g):
                if taken[g] and not crowd[g]:
                    continue
                if m > -1 and not ignore[m] and ignore[g]:
                    break  # ground truth is sorted real boxes first: no better match follows
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m > -1:
                matched[t, d], ignored[t, d], taken[m] = True, ignore[m], True
    return matched, ignored


@dataclass
class _Category:
    image: np.ndarray  # image index of each detection, detections sorted by score (stable)
    tp: np.ndarray  # [T, D] counted as a true positive
    fp: np.ndarray  # [T, D] counted as a false positive (unmatched, not ignored)
    positives: np.ndarray  # non-ignored ground-truth boxes per image


class CocoMatches:
    """mAP50-95 and mAP50 (percent, under `prefix` names) of one variant's detections against
    one ground truth, for any per-image weights (1 each: the plain evaluation)."""

    def __init__(self, gt: dict[str, Any], dets: list[dict[str, Any]], prefix: str = "") -> None:
        self.prefix = prefix
        ids = [im["id"] for im in gt["images"]]
        self.n_images = len(ids)
        row = {img_id: i for i, img_id in enumerate(ids)}
        cats = sorted({c["id"] for c in gt.get("categories", [])})
        by_key_gt: dict[tuple[int, int], list[dict]] = {}
        for ann in gt["annotations"]:
            by_key_gt.setdefault((ann["image_id"], ann["category_id"]), []).append(ann)
        by_key_dt: dict[tuple[int, int], list[dict]] = {}
        for det in dets:
            by_key_dt.setdefault((det["image_id"], det["category_id"]), []).append(det)
        self.categories: list[_Category] = []
        for cat in cats:
            images, tps, fps = [], [], []
            scores: list[float] = []
            positives = np.zeros(self.n_images)
            for img_id in ids:
                g = by_key_gt.get((img_id, cat), [])
                crowd = np.array([bool(a.get("iscrowd", 0)) for a in g], bool)
                ignore = np.array([bool(a.get("ignore", 0)) or c for a, c in zip(g, crowd)], bool)
                order_g = np.argsort(ignore, kind="mergesort")
                positives[row[img_id]] = float((~ignore).sum())
                d = by_key_dt.get((img_id, cat), [])
                if not d:
                    continue
                d_scores = np.array([x["score"] for x in d])
                order_d = np.argsort(-d_scores, kind="mergesort")[:MAX_DET]
                boxes_g = np.array([a["bbox"] for a in g], float).reshape(-1, 4)[order_g]
                boxes_d = np.array([x["bbox"] for x in d], float).reshape(-1, 4)[order_d]
                ious = _iou(boxes_d, boxes_g, crowd[order_g])
                matched, ignored = _match(ious, ignore[order_g], crowd[order_g])
                images.append(np.full(len(order_d), row[img_id]))
                scores.extend(d_scores[order_d])
                tps.append(matched & ~ignored)
                fps.append(~matched)  # an unmatched detection is never ignored in area "all"
            if not positives.any():
                continue  # pycocotools leaves a class without ground truth out of the mean
            if not images:  # ground truth but no detections: recall 0 at every threshold
                empty = np.zeros((len(IOU_THRESHOLDS), 0), bool)
                images, tps, fps = [np.zeros(0, int)], [empty], [empty]
            order = np.argsort(-np.asarray(scores, float), kind="mergesort")
            self.categories.append(
                _Category(
                    np.concatenate(images)[order],
                    np.concatenate(tps, axis=1)[:, order],
                    np.concatenate(fps, axis=1)[:, order],
                    positives,
                )
            )

        self._flatten()

    def _flatten(self) -> None:
        """Every class's detections in one array (class after class, by score within each), so
        a resample is a few whole-array operations instead of a loop over classes."""
        cats = self.categories
        n_t = len(IOU_THRESHOLDS)
        self.cat = np.concatenate([np.full(len(c.image), k) for k, c in enumerate(cats)] + [[]])
        self.cat = self.cat.astype(int)
        self.image = np.concatenate([c.image for c in cats] + [np.zeros(0, int)]).astype(int)
        self.tp = np.concatenate([c.tp for c in cats] + [np.zeros((n_t, 0), bool)], axis=1)
        self.fp = np.concatenate([c.fp for c in cats] + [np.zeros((n_t, 0), bool)], axis=1)
        sizes = np.array([len(c.image) for c in cats], int)
        self.ends = np.cumsum(sizes)
        self.starts = self.ends - sizes
        self.positives = np.array([c.positives for c in cats]).reshape(len(cats), self.n_images)

    def values(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """{prefix + 'mAP50_95': ..., prefix + 'mAP50': ...} with image i counted weights[i]
        times (pycocotools' accumulate, vectorised over classes and IoU thresholds)."""
        w = np.ones(self.n_images) if weights is None else np.asarray(weights, float)
        n_k, n_t, n_d = len(self.categories), len(IOU_THRESHOLDS), self.cat.size
        npig = self.positives @ w
        valid = np.flatnonzero(npig > 0)  # a class absent from this resample is left out
        if not valid.size:
            # A resample that drew no image with an object has no mAP (pycocotools reports -1):
            # NaN, which the bootstrap leaves out. As 0 it pulled FP32's agreement with itself
            # to [0, 100] on a hand detector whose photos mostly show no hand.
            none = 0.0 if weights is None else float("nan")
            return {self.prefix + "mAP50_95": none, self.prefix + "mAP50": none}
        # A detection of an image drawn 0 times adds nothing: its point repeats the previous
        # one on the curve, which changes neither the interpolated precision nor the recall
        # thresholds it reaches, so no filtering is needed.
        wd = w[self.image]
        tp = np.cumsum(self.tp * wd, axis=1)
        fp = np.cumsum(self.fp * wd, axis=1)
        before = lambda c: np.concatenate([np.zeros((n_t, 1)), c], axis=1)[:, self.starts]  # noqa: E731
        tp -= before(tp)[:, self.cat]
        fp -= before(fp)[:, self.cat]
        recall = tp / np.where(npig > 0, npig, 1)[self.cat]
        prec = tp / (tp + fp + np.spacing(1))
        # Offsets of 2 per class (values lie in [0, 1]) keep one running max or one sorted
        # search from crossing into the next class.
        rank = 2.0 * (n_k - 1 - self.cat)
        prec = np.maximum.accumulate((prec + rank)[:, ::-1], axis=1)[:, ::-1] - rank
        shift = 2.0 * self.cat[None, :] + 2.0 * n_k * np.arange(n_t)[:, None]
        flat = (recall + shift).ravel()
        t_ix = np.arange(n_t)[:, None, None]
        query = RECALL_POINTS[None, None, :] + 2.0 * valid[None, :, None] + 2.0 * n_k * t_ix
        at = np.searchsorted(flat, query.ravel(), side="left").reshape(query.shape)
        end = (t_ix * n_d + self.ends[valid][None, :, None]) if n_d else np.zeros_like(at)
        q = np.where(at < end, prec.ravel()[np.minimum(at, max(n_d * n_t - 1, 0))], 0.0)
        return {
            self.prefix + "mAP50_95": float(q.mean() * 100),
            self.prefix + "mAP50": float(q[0].mean() * 100),
        }
