"""Decoders for common detector output layouts: YOLOv8, YOLOv5, end-to-end, EfficientNMS, TF/SSD,
DETR, boxes + class scores. Each turns one image's raw outputs into boxes x1,y1,x2,y2 in
model-input pixels, scores and class ids, and says whether the model has already done NMS."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.core.model.spec import ModelSpec

Decoded = tuple[np.ndarray, np.ndarray, np.ndarray, bool]  # boxes, scores, class ids, nms done


def output_for(outputs: list[np.ndarray], spec: ModelSpec, role: str, default: int) -> np.ndarray:
    """The output playing `role`: the one postprocess.outputs names, else one named as the role
    (any case: "boxes", "scores"), else the one at `default`."""
    name = spec.postprocess.outputs.get(role, role).lower()
    for i, o in enumerate(spec.outputs):
        if o["name"].lower() == name:
            return outputs[i]
    return outputs[default]


def _scale_boxes(boxes: np.ndarray, spec: ModelSpec, in_h: int, in_w: int) -> np.ndarray:
    if spec.postprocess.boxes_normalized:
        return boxes * np.array([in_w, in_h, in_w, in_h], np.float32)
    return boxes


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1).astype(np.float32)


def _rows(raw: np.ndarray, transposed: bool) -> np.ndarray:
    """[anchors, features] from one image's [features, anchors] or [anchors, features]."""
    return raw.T if transposed else raw


def _detection_rows(outputs: list[np.ndarray], spec: ModelSpec) -> tuple[np.ndarray, int]:
    """[anchors, features] of the detection output and where its class scores end (before a
    segmentation head's mask coefficients)."""
    raw = _rows(output_for(outputs, spec, "detections", 0)[0], spec.postprocess.transposed)
    return raw, raw.shape[1] - spec.postprocess.mask_coefficients


def _yolo(outputs, spec, in_h, in_w, conf, objectness: bool) -> tuple[Decoded, np.ndarray]:
    """The YOLOv8 / YOLOv5 rows above `conf`, and their mask coefficients ([k, 0] without)."""
    raw, end = _detection_rows(outputs, spec)
    cls = raw[:, 5 if objectness else 4 : end]
    class_ids = cls.argmax(axis=1)
    scores = cls[np.arange(cls.shape[0]), class_ids]
    if objectness:
        scores = raw[:, 4] * scores
    keep = np.flatnonzero(scores >= conf)
    boxes = _scale_boxes(cxcywh_to_xyxy(raw[keep, :4]), spec, in_h, in_w)
    decoded = boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64), False
    return decoded, raw[keep, end:]


def decode_yolov8(outputs, spec, in_h, in_w, conf) -> Decoded:
    """[4+C, N] (or [N, 4+C]): cx, cy, w, h, per-class scores, no objectness (then a
    segmentation head's mask coefficients: `yolo_with_coefficients`)."""
    return _yolo(outputs, spec, in_h, in_w, conf, False)[0]


def decode_yolov5(outputs, spec, in_h, in_w, conf) -> Decoded:
    """[N, 5+C] (or [5+C, N]): cx, cy, w, h, objectness, per-class scores (then a
    segmentation head's mask coefficients: `yolo_with_coefficients`)."""
    return _yolo(outputs, spec, in_h, in_w, conf, True)[0]


def yolo_with_coefficients(outputs, spec, in_h, in_w, conf) -> tuple[Decoded, np.ndarray]:
    """A -seg export's decoded rows (as decode_yolov8 / decode_yolov5) and each row's mask
    coefficients [k, M]."""
    return _yolo(outputs, spec, in_h, in_w, conf, spec.postprocess.decoder == "yolov5")


def decode_end2end(outputs, spec, in_h, in_w, conf) -> Decoded:
    """[K, 6]: x1, y1, x2, y2, score, class; NMS already done in the graph. Or the same split
    in two (MMDeploy): dets [1, K, 5] x1, y1, x2, y2, score and labels [1, K]."""
    return end2end_with_rows(outputs, spec, in_h, in_w, conf)[0]


def end2end_with_rows(outputs, spec, in_h, in_w, conf) -> tuple[Decoded, np.ndarray]:
    """decode_end2end's detections and the output rows they come from (MMDeploy's masks
    output is row for row with its dets)."""
    if "labels" in spec.postprocess.outputs:
        dets = output_for(outputs, spec, "detections", 0)[0].reshape(-1, 5)
        labels = output_for(outputs, spec, "labels", 1)[0].reshape(-1, 1)
        raw = np.concatenate([dets.astype(np.float32), labels.astype(np.float32)], axis=1)
    else:
        raw = outputs[0][0]
    rows = np.flatnonzero(raw[:, 4] >= conf)
    raw = raw[rows]
    boxes = _scale_boxes(raw[:, :4].astype(np.float32), spec, in_h, in_w)
    cls = np.rint(raw[:, 5]).astype(np.int64) - spec.postprocess.class_offset
    return (boxes, raw[:, 4].astype(np.float32), cls, True), rows


def decode_batch_rows(outputs, spec, in_h, in_w, conf) -> Decoded:
    """[K, 7]: image index, x1, y1, x2, y2, class, score for every image of the batch (YOLOv7's
    end-to-end export for ONNX Runtime), or score, class (YOLO-NAS's flat format,
    `score_first`); NMS already done in the graph."""
    score, cls = (5, 6) if spec.postprocess.score_first else (6, 5)
    raw = outputs[0].reshape(-1, 7)
    raw = raw[(np.rint(raw[:, 0]) == 0) & (raw[:, score] >= conf)]
    boxes = _scale_boxes(raw[:, 1:5].astype(np.float32), spec, in_h, in_w)
    ids = np.rint(raw[:, cls]).astype(np.int64) - spec.postprocess.class_offset
    return boxes, raw[:, score].astype(np.float32), ids, True


def decode_class_score_rows(outputs, spec, in_h, in_w, conf) -> Decoded:
    """PaddleDetection's NMS output: rows [K, 6] of class, score, x1, y1, x2, y2 for the whole
    batch, the first count[0] of them the first image's; an empty result is one row of class -1."""
    raw = output_for(outputs, spec, "detections", 0).reshape(-1, 6)
    raw = raw[: _counted(output_for(outputs, spec, "count", 1), raw.shape[0])]
    raw = raw[(raw[:, 0] >= 0) & (raw[:, 1] >= conf)]
    boxes = _scale_boxes(raw[:, 2:6].astype(np.float32), spec, in_h, in_w)
    cls = np.rint(raw[:, 0]).astype(np.int64) - spec.postprocess.class_offset
    return boxes, raw[:, 1].astype(np.float32), cls, True


def _counted(count: np.ndarray, k: int) -> int:
    return int(min(k, max(0, int(np.asarray(count).reshape(-1)[0])))) if count.size else k


def decode_efficient_nms(outputs, spec, in_h, in_w, conf) -> Decoded:
    """num_dets [1, 1], det_boxes [1, K, 4] x1,y1,x2,y2, det_scores [1, K], det_classes [1, K]."""
    boxes = output_for(outputs, spec, "boxes", 1)[0].reshape(-1, 4).astype(np.float32)
    n = _counted(output_for(outputs, spec, "count", 0), boxes.shape[0])
    scores = output_for(outputs, spec, "scores", 2)[0].reshape(-1)[:n].astype(np.float32)
    cls = np.rint(output_for(outputs, spec, "classes", 3)[0].reshape(-1)[:n]).astype(np.int64)
    keep = scores >= conf
    boxes = _scale_boxes(boxes[:n][keep], spec, in_h, in_w)
    return boxes, scores[keep], cls[keep] - spec.postprocess.class_offset, True


def decode_tf_od(outputs, spec, in_h, in_w, conf) -> Decoded:
    """TF Object Detection / TFLite SSD: boxes [1, K, 4] ymin, xmin, ymax, xmax (normalised),
    classes [1, K], scores [1, K], count [1]."""
    yxyx = output_for(outputs, spec, "boxes", 0)[0].reshape(-1, 4).astype(np.float32)
    n = _counted(output_for(outputs, spec, "count", 3), yxyx.shape[0])
    cls = np.rint(output_for(outputs, spec, "classes", 1)[0].reshape(-1)[:n]).astype(np.int64)
    scores = output_for(outputs, spec, "scores", 2)[0].reshape(-1)[:n].astype(np.float32)
    keep = scores >= conf
    boxes = yxyx[:n][keep][:, [1, 0, 3, 2]]
    boxes = _scale_boxes(boxes, spec, in_h, in_w)
    return boxes, scores[keep], cls[keep] - spec.postprocess.class_offset, True


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_detr(outputs, spec, in_h, in_w, conf) -> Decoded:
    """DETR / RT-DETR: [Q, 4+C] or separate boxes [Q, 4] and logits [Q, C]; boxes cx, cy, w, h
    normalised; scores as probabilities or logits (sigmoid, or softmax with a no-object class
    last). One box per query, no NMS (a set prediction)."""
    post = spec.postprocess
    if post.outputs.get("logits"):
        boxes = output_for(outputs, spec, "boxes", 0)[0].reshape(-1, 4)
        logits = output_for(outputs, spec, "logits", 1)[0]
        logits = logits.reshape(boxes.shape[0], -1)
    else:
        raw = outputs[0][0]
        boxes, logits = raw[:, :4], raw[:, 4:]
    if post.score_activation == "sigmoid":
        probs = _sigmoid(logits.astype(np.float32))
    elif post.score_activation == "softmax":
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = (z / z.sum(axis=1, keepdims=True))[:, :-1]  # last column: "no object"
    else:
        probs = logits
    class_ids = probs.argmax(axis=1)
    scores = probs[np.arange(probs.shape[0]), class_ids]
    keep = np.flatnonzero(scores >= conf)
    xyxy = _scale_boxes(cxcywh_to_xyxy(boxes[keep].astype(np.float32)), spec, in_h, in_w)
    return xyxy, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64), True


def decode_boxes_scores(outputs, spec, in_h, in_w, conf) -> Decoded:
    """Boxes [1, N, 4] x1, y1, x2, y2 and per-class scores [1, N, C] (or [1, C, N]) before NMS
    (YOLO-NAS, DAMO-YOLO, PP-YOLOE exported without NMS)."""
    post = spec.postprocess
    boxes = output_for(outputs, spec, "boxes", 0)[0].reshape(-1, 4)
    probs = _rows(output_for(outputs, spec, "scores", 1)[0], post.transposed)
    if post.score_activation == "sigmoid":
        probs = _sigmoid(probs.astype(np.float32))
    class_ids = probs.argmax(axis=1)
    scores = probs[np.arange(probs.shape[0]), class_ids]
    keep = np.flatnonzero(scores >= conf)
    xyxy = _scale_boxes(boxes[keep].astype(np.float32), spec, in_h, in_w)
    return xyxy, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64), False


DECODE: dict[str, Callable[..., Decoded]] = {
    "boxes_scores": decode_boxes_scores,
    "yolov8": decode_yolov8,
    "yolov5": decode_yolov5,
    "end2end": decode_end2end,
    "batch_rows": decode_batch_rows,
    "class_score_rows": decode_class_score_rows,
    "efficient_nms": decode_efficient_nms,
    "tf_od": decode_tf_od,
    "detr": decode_detr,
}
