"""Read probe outputs under one candidate layout: every row as a box in input pixels and a score.

Unthresholded and without NMS: `output_formats` judges whether the reading is plausible. (The
decoders used on every frame live in `app.core.frames.decoders`, a package above this one.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Candidate:
    """One way to read the outputs: a decoder and its Postprocess fields."""

    decoder: str
    fields: dict[str, Any] = field(default_factory=dict)
    n_classes: int = 0
    note: str = ""
    prior: float = 0.0


@dataclass
class Reading:
    """Per probe frame: boxes [N, 4] x1, y1, x2, y2 in input pixels and scores [N]."""

    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    problem: str = ""


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    half = cxcywh[:, 2:4] / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def _whole(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.allclose(values, np.rint(values)))


def _grid(hw: tuple[int, int], strides: list[int]) -> tuple[np.ndarray, np.ndarray]:
    grids, steps = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(hw[0] // s), np.arange(hw[1] // s), indexing="ij")
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        steps.append(np.full((grids[-1].shape[0], 1), s))
    return np.concatenate(grids).astype(np.float64), np.concatenate(steps).astype(np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _softmax_no_object(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True))[:, :-1]


def _frame(cand: Candidate, out: dict[str, np.ndarray], hw: tuple[int, int]):
    """(boxes, scores, problem) of one frame's outputs under `cand`."""
    f, dec = cand.fields, cand.decoder
    scale = np.array([hw[1], hw[0], hw[1], hw[0]], np.float64)
    if dec == "batch_rows":
        rows = next(iter(out.values())).reshape(-1, 7).astype(np.float64)
        score, cls = (5, 6) if f.get("score_first") else (6, 5)
        boxes, scores = rows[:, 1:5], rows[:, score]
        if not (_whole(rows[:, 0]) and _whole(rows[:, cls])):
            return boxes, scores, "its image-index or class column holds fractions"
        return (boxes * scale if f.get("boxes_normalized") else boxes), scores, ""
    if dec == "class_score_rows":
        rows = out[f["outputs"]["detections"]].reshape(-1, 6).astype(np.float64)
        rows = rows[rows[:, 0] >= 0]  # PaddleDetection's empty result: one row of class -1
        boxes, scores = rows[:, 2:6], rows[:, 1]
        if not _whole(rows[:, 0]):
            return boxes, scores, "its class column holds fractions"
        return (boxes * scale if f.get("boxes_normalized") else boxes), scores, ""
    if dec == "efficient_nms" or dec == "tf_od":
        roles = f["outputs"]
        boxes = out[roles["boxes"]][0].reshape(-1, 4).astype(np.float64)
        scores = out[roles["scores"]][0].reshape(-1).astype(np.float64)
        if not _whole(out[roles["classes"]]):
            return boxes, scores, "its class output holds fractions"
        if dec == "tf_od":
            boxes = boxes[:, [1, 0, 3, 2]]
        return (boxes * scale if f.get("boxes_normalized") else boxes), scores, ""
    if dec == "boxes_scores":
        roles = f["outputs"]
        boxes = out[roles["boxes"]][0].reshape(-1, 4).astype(np.float64)
        probs = out[roles["scores"]][0].astype(np.float64)
        probs = probs.T if f.get("transposed") else probs
        if f.get("score_activation") == "sigmoid":
            probs = _sigmoid(probs)
        boxes = boxes * scale if f.get("boxes_normalized") else boxes
        return boxes, probs.reshape(boxes.shape[0], -1).max(axis=1), ""
    if dec == "end2end" and "labels" in f.get("outputs", {}):  # MMDeploy: dets and labels
        dets = out[f["outputs"]["detections"]][0].reshape(-1, 5).astype(np.float64)
        if not _whole(out[f["outputs"]["labels"]].astype(np.float64)):
            return dets[:, :4], dets[:, 4], "its labels output holds fractions"
        boxes = dets[:, :4] * scale if f.get("boxes_normalized") else dets[:, :4]
        return boxes, dets[:, 4], ""
    if dec == "detr" and "outputs" in f:
        boxes = out[f["outputs"]["boxes"]][0].reshape(-1, 4).astype(np.float64)
        logits = out[f["outputs"]["logits"]][0].astype(np.float64).reshape(boxes.shape[0], -1)
    else:
        name = f.get("outputs", {}).get("detections") or next(iter(out))
        raw = out[name][0].astype(np.float64)
        rows = raw.T if f.get("transposed") else raw
        boxes, logits = rows[:, :4], rows[:, 4 : rows.shape[1] - f.get("mask_coefficients", 0)]
    if dec == "end2end":
        if not _whole(logits[:, 1]):
            return boxes, logits[:, 0], "its class column holds fractions"
        return (boxes * scale if f.get("boxes_normalized") else boxes), logits[:, 0], ""
    if dec == "boxes_xywh_cls_prob":
        if not _whole(logits[:, 0]):
            return boxes, logits[:, 1], "its class column holds fractions"
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:4]], axis=1)
        return xyxy, logits[:, 1], ""
    if dec == "yolox_raw":
        grid, stride = _grid(hw, [8, 16, 32])
        with np.errstate(over="ignore", invalid="ignore"):
            cxcy = (boxes[:, :2] + grid) * stride
            wh = np.exp(boxes[:, 2:4]) * stride
        scores = logits[:, 0] * logits[:, 1:].max(axis=1)
        return _xyxy(np.concatenate([cxcy, wh], axis=1)), scores, ""
    if dec == "yolov5":
        scores = logits[:, 0] * logits[:, 1:].max(axis=1)
    elif dec == "detr" and f.get("score_activation") == "sigmoid":
        scores = _sigmoid(logits).max(axis=1)
    elif dec == "detr" and f.get("score_activation") == "softmax":
        scores = _softmax_no_object(logits).max(axis=1)
    else:  # yolov8, detr with probabilities
        scores = logits.max(axis=1)
    boxes = _xyxy(boxes)
    return (boxes * scale if f.get("boxes_normalized") else boxes), scores, ""


def read_candidate(
    cand: Candidate, probes: list[dict[str, np.ndarray]], hw: tuple[int, int]
) -> Reading:
    """Every probe frame read under `cand`; `problem` says why the layout cannot be this one."""
    reading = Reading()
    for out in probes:
        try:
            boxes, scores, problem = _frame(cand, out, hw)
        except (ValueError, IndexError, KeyError) as exc:  # shapes that do not fit this layout
            boxes, scores, problem = np.zeros((0, 4)), np.zeros(0), f"it does not fit ({exc})"
        if problem:
            reading.problem = problem
        reading.boxes.append(boxes)
        reading.scores.append(scores)
    return reading
