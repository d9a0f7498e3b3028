"""Raw model outputs to detections (YOLOX grid decode, decoded boxes, the layouts in `decoders`,
with instance masks where a segmentation model gives them) or top-k classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, partial

import cv2
import numpy as np

from app.core.errors import UserError
from app.core.frames.decoders import (
    DECODE,
    end2end_with_rows,
    output_for,
    yolo_with_coefficients,
)
from app.core.frames.masks import InstanceMasks, pasted_masks, prototype_masks
from app.core.frames.preprocess import Geometry
from app.core.model.spec import ModelSpec, Postprocess


@dataclass
class Detections:
    """Boxes x1,y1,x2,y2 in source pixels, with scores and class ids (parallel arrays), and
    a segmentation model's instance masks when asked for."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    # the instance masks, or a function that makes them when they are first asked for: a live
    # view decodes every frame but draws only those the screen has a refresh for (on a GPU
    # most are not drawn, and 30 masks of a 1280x720 frame take 3.7 ms of CPU)
    mask_maker: InstanceMasks | Callable[[], InstanceMasks] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def masks(self) -> InstanceMasks | None:
        if callable(self.mask_maker):
            self.mask_maker = self.mask_maker()
        return self.mask_maker

    def filtered(self, conf: float) -> Detections:
        keep = self.scores >= conf
        masks = None if self.mask_maker is None else lambda: self.masks.take(keep)  # type: ignore[union-attr]
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep], masks)


@dataclass
class TopK:
    class_ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.class_ids.shape[0])


@lru_cache(maxsize=16)
def yolox_grid(in_h: int, in_w: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(grid xy [A, 2], stride [A, 1]) for YOLOX anchor points, row-major per stride level."""
    grids, steps = [], []
    for s in strides:
        gh, gw = in_h // s, in_w // s
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        steps.append(np.full((gh * gw, 1), s))
    return (
        np.concatenate(grids).astype(np.float32),
        np.concatenate(steps).astype(np.float32),
    )


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float, max_det: int):
    """Class-aware NMS; returns kept indices, best first. OpenCV's C++ batched NMS does the work."""
    if boxes.shape[0] == 0:
        return np.zeros((0,), np.int64)
    xywh = np.empty_like(boxes)
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    keep = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), scores.tolist(), class_ids.tolist(), 0.0, float(iou)
    )
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return keep[:max_det]


def decode_yolox(raw: np.ndarray, in_h: int, in_w: int, post: Postprocess, conf: float):
    """YOLOX [A, 5+C] (or transposed [5+C, A]) grid output -> (boxes xyxy in model pixels,
    scores, class ids), pre-NMS.

    Scores are obj * best class probability; anchors under `conf` are dropped before any
    arithmetic on boxes so the cost follows the number of candidates, not of anchors. A fused
    graph (see graph_fusion) already gives [A, 6] = offsets, score, class id.
    """
    if post.transposed and raw.shape[1] != 6:  # [5+C, A]; a fused graph gives [A, 6]
        raw = raw.T
    if raw.shape[1] == 6:
        scores = raw[:, 4]
        class_ids = raw[:, 5]  # float class ids; only the kept ones are converted below
    else:
        cls = raw[:, 5:]
        class_ids = cls.argmax(axis=1)
        scores = raw[:, 4] * cls[np.arange(cls.shape[0]), class_ids]
    keep = np.flatnonzero(scores >= conf)
    grid, stride = yolox_grid(in_h, in_w, tuple(post.strides))
    sel = raw[keep]
    cxy = (sel[:, :2] + grid[keep]) * stride[keep]
    wh = np.exp(sel[:, 2:4]) * stride[keep]
    boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], axis=1).astype(np.float32)
    return boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64)


def postprocess_detections(
    outputs: list[np.ndarray],
    spec: ModelSpec,
    geo: Geometry,
    conf: float | None = None,
    iou: float | None = None,
    masks: bool = False,
) -> Detections:
    """Decode one image's raw outputs (batch index 0) into detections in source pixels;
    `UserError` when they do not fit the spec's decoder (one a preset named, say). `masks`:
    also a segmentation model's instance masks (for drawing; scoring reads boxes)."""
    try:
        return _decode(outputs, spec, geo, conf, iou, masks)
    except (ValueError, IndexError, KeyError) as exc:
        shapes = ", ".join(str(list(np.shape(o))) for o in outputs)
        fix = (
            f"correct the decoder in the preset {spec.preset}, or remove that preset to let "
            "inspection read the outputs"
            if spec.preset
            else "open the model again so inspection reads its outputs afresh"
        )
        raise UserError(
            f"{spec.path}: its outputs ({shapes}) do not fit the {spec.postprocess.decoder} "
            f"decoder ({type(exc).__name__}: {str(exc)[:160]}); {fix}"
        ) from exc


def _decode(
    outputs: list[np.ndarray],
    spec: ModelSpec,
    geo: Geometry,
    conf: float | None,
    iou: float | None,
    want_masks: bool = False,
) -> Detections:
    post = spec.postprocess
    conf = post.conf if conf is None else conf
    iou = post.iou if iou is None else iou
    if want_masks and has_masks(spec):
        return _with_masks(outputs, spec, geo, conf, iou)
    if post.decoder == "yolox_raw":
        boxes, scores, cls = decode_yolox(outputs[0][0], geo.in_h, geo.in_w, post, conf)
    elif post.decoder == "boxes_xywh_cls_prob":
        raw = outputs[0][0]
        raw = raw[raw[:, 5] >= conf]
        boxes = np.concatenate([raw[:, :2], raw[:, :2] + raw[:, 2:4]], axis=1).astype(np.float32)
        scores, cls = raw[:, 5].astype(np.float32), raw[:, 4].astype(np.int64)
    elif post.decoder == "boxes_labels_scores":
        # the roles inspection read by shape (numbered outputs), else by name, else by order
        boxes = output_for(outputs, spec, "boxes", 0).reshape(-1, 4).astype(np.float32)
        scores = output_for(outputs, spec, "scores", 2).reshape(-1).astype(np.float32)
        labels = output_for(outputs, spec, "labels", 1).reshape(-1).astype(np.int64)
        labels = labels - post.class_offset
        cls = np.broadcast_to(labels, scores.shape).copy() if labels.size else labels
        if post.boxes_normalized:
            boxes = boxes * np.array([geo.in_w, geo.in_h, geo.in_w, geo.in_h], np.float32)
        keep = scores >= conf
        boxes, scores, cls = boxes[keep], scores[keep], cls[keep]
    elif post.decoder in DECODE:
        boxes, scores, cls, nms_done = DECODE[post.decoder](outputs, spec, geo.in_h, geo.in_w, conf)
        if nms_done:  # the graph already suppressed duplicates: keep its choice, best first
            keep = np.argsort(-scores, kind="stable")[: post.max_det]
            return Detections(geo.to_source(boxes[keep]), scores[keep], cls[keep])
    else:
        raise ValueError(f"not a detection decoder: {post.decoder}")
    keep = nms(boxes, scores, cls, iou, post.max_det)
    return Detections(geo.to_source(boxes[keep]), scores[keep], cls[keep].astype(np.int64))


def has_masks(spec: ModelSpec) -> bool:
    """Whether the model gives instance masks the app can draw: Ultralytics' prototypes, or
    MMDeploy's mask output beside its detections."""
    post = spec.postprocess  # (a spec saved before masks were read has no prototypes role;
    # its second output holds them all the same)
    return (post.mask_coefficients > 0 and len(spec.outputs) == 2) or (
        post.decoder == "end2end" and "masks" in post.outputs
    )


def _with_masks(
    outputs: list[np.ndarray], spec: ModelSpec, geo: Geometry, conf: float, iou: float
) -> Detections:
    post = spec.postprocess
    if post.decoder == "end2end":  # MMDeploy: masks [1, K, h, w] row for row with dets
        (boxes, scores, cls, _), rows = end2end_with_rows(outputs, spec, geo.in_h, geo.in_w, conf)
        keep = np.argsort(-scores, kind="stable")[: post.max_det]
        maps = output_for(outputs, spec, "masks", 2)[0][rows[keep]]
        found = partial(pasted_masks, maps, boxes[keep], geo)
    else:  # Ultralytics -seg: coefficients per row, prototypes [1, M, h, w]
        (boxes, scores, cls, _), coefs = yolo_with_coefficients(
            outputs, spec, geo.in_h, geo.in_w, conf
        )
        keep = nms(boxes, scores, cls, iou, post.max_det)
        if "prototypes" in post.outputs:
            protos = output_for(outputs, spec, "prototypes", 1)
        else:  # the one 4-D output, [1, M, h, w] (the detections are 3-D)
            protos = next((o for o in outputs if o.ndim == 4), None)
            if protos is None:  # said in words by postprocess_detections
                raise ValueError("no [1, M, h, w] mask prototypes output")
        found = partial(prototype_masks, coefs[keep], protos[0], boxes[keep], geo)
    # made when first asked for (drawn, compared, written out), not for every decoded frame
    return Detections(geo.to_source(boxes[keep]), scores[keep], cls[keep].astype(np.int64), found)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def class_probabilities(outputs: list[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """[N, classes] probabilities (softmax applied when the model outputs logits)."""
    logits = outputs[0].reshape(outputs[0].shape[0], -1).astype(np.float32)
    return softmax(logits) if spec.postprocess.apply_softmax else logits


def topk(probs: np.ndarray, k: int) -> TopK:
    """Top-k of one probability row, best first."""
    k = max(1, min(k, probs.shape[-1]))
    idx = np.argpartition(-probs, k - 1)[:k]
    idx = idx[np.argsort(-probs[idx], kind="stable")]
    return TopK(idx.astype(np.int64), probs[idx].astype(np.float32))
