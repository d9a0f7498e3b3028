"""Readings of detectors with several outputs (boxes beside scores, labels, counts or mask
prototypes) and the value tests the readings share: normalised boxes, score activations.
`output_formats` weighs these candidates with the one-output ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.core.model.output_readings import Candidate


def is_count(shape: tuple[int, ...]) -> bool:
    return int(np.prod(shape[1:], dtype=np.int64)) <= 1


def looks_normalised(boxes: np.ndarray, unknown: bool | None) -> bool | None:
    """Whether box coordinates look normalised to 0..1; `unknown` when every row is zero (the
    padding of a fixed-size output on a frame with nothing in it)."""
    rows = boxes[np.any(boxes != 0, axis=1)]
    if not rows.size:
        return unknown
    return bool(rows.min() >= -0.5 and rows.max() <= 1.5)


def decoded_boxes_labels_scores(
    probes: list[dict[str, np.ndarray]],
) -> tuple[dict[str, Any], list[str]] | None:
    """(Postprocess fields, notes) when outputs boxes and scores hold one score per box (NMS
    done: HaGRID's, torchvision's; a row of class scores is `boxes_scores`); else None. Box
    coordinates as the probes show, normalised (HaGRID's kind) when they show none, said."""
    lower = {k.lower(): k for k in probes[0]}
    roles: dict[str, str] = {}
    if "boxes" not in lower or "scores" not in lower:
        roles = _unnamed_boxes_labels_scores(probes[0])
        if not roles:
            return None
        lower = {"boxes": roles["boxes"], "scores": roles["scores"]}
    boxes, scores = probes[0][lower["boxes"]], probes[0][lower["scores"]]
    if scores.size * 4 != boxes.size:
        return None
    notes = ["outputs boxes/scores: already-decoded detections (guessed)"]
    if roles:
        notes = [
            f"outputs read by shape and type as boxes {roles['boxes']}, labels "
            f"{roles['labels']} (integers) and scores {roles['scores']}: already-decoded "
            "detections (guessed: no output name says so)"
        ]
    seen = np.concatenate(
        [np.asarray(p[lower["boxes"]], np.float32).reshape(-1, 4) for p in probes]
    )
    normalised = looks_normalised(seen, None)
    if normalised is None:
        normalised = True
        notes.append(
            "box coordinates taken as normalised 0..1 (guessed: no box on the probe frames); "
            "if boxes come out in the corner, set boxes_normalized false"
        )
    else:
        notes.append(f"box coordinates {'normalised 0..1' if normalised else 'in input pixels'}")
    return {"boxes_normalized": normalised, **({"outputs": roles} if roles else {})}, notes


def _unnamed_boxes_labels_scores(out: dict[str, np.ndarray]) -> dict[str, str]:
    """Roles of three outputs no name explains (torch.onnx.export numbers them unless told) when
    they are boxes [.., n, 4], integer labels and float scores of n each (torchvision's
    detectors); empty otherwise."""
    if len(out) != 3:
        return {}
    floats = {k for k, v in out.items() if np.issubdtype(v.dtype, np.floating)}
    boxes = [k for k in floats if out[k].ndim in (2, 3) and out[k].shape[-1] == 4]
    labels = [k for k, v in out.items() if np.issubdtype(v.dtype, np.integer) and v.ndim in (1, 2)]
    scores = [k for k in floats - set(boxes) if out[k].ndim in (1, 2)]
    if len(boxes) != 1 or len(labels) != 1 or len(scores) != 1:
        return {}
    n = out[boxes[0]].size // 4
    if out[labels[0]].size != n or out[scores[0]].size != n:
        return {}
    return {"boxes": boxes[0], "labels": labels[0], "scores": scores[0]}


def score_activation(values: np.ndarray, separate: bool, n: int) -> str:
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
        return "none"
    # facebook DETR: softmax over the classes plus a last "no object" column (92 for COCO)
    return "softmax" if separate and n in (81, 91, 92) else "sigmoid"


def _roles_by_values(pair: list[str], probes: list[dict[str, np.ndarray]]) -> tuple[str, str]:
    """(scores, classes) of two [1, K] outputs: names first, else the one with whole numbers."""
    lower = [n.lower() for n in pair]
    for i, n in enumerate(lower):
        if "score" in n or "conf" in n:
            return pair[i], pair[1 - i]
        if "class" in n or "label" in n:
            return pair[1 - i], pair[i]
    whole = [all(np.allclose(p[n], np.rint(p[n])) for p in probes) for n in pair]
    if whole[0] != whole[1]:
        return (pair[1], pair[0]) if whole[0] else (pair[0], pair[1])
    return pair[1], pair[0]  # TFLite's order: boxes, classes, scores, count


def four_outputs(names: list[str], probes: list[dict[str, np.ndarray]]) -> list[Candidate]:
    shapes = {n: probes[0][n].shape for n in names}
    count = [n for n in names if is_count(shapes[n])]
    boxes = [n for n in names if len(shapes[n]) == 3 and shapes[n][-1] == 4]
    pair = [n for n in names if n not in count + boxes]
    if len(count) != 1 or len(boxes) != 1 or len(pair) != 2:
        return []
    scores, classes = _roles_by_values(pair, probes)
    roles = {"count": count[0], "boxes": boxes[0], "scores": scores, "classes": classes}
    normalised = looks_normalised(
        np.concatenate([p[boxes[0]].reshape(-1, 4) for p in probes]), None
    )
    tf_names = any("detection_classes" in n.lower() for n in names)
    one_based = {"class_offset": 1} if tf_names else {}
    nms_named = any(n.lower().startswith("det_") or "num_dets" in n.lower() for n in names)
    return [
        Candidate(
            "efficient_nms",
            {"outputs": roles, "boxes_normalized": bool(normalised)},
            0,
            "four outputs, EfficientNMS style: count, boxes x1, y1, x2, y2, scores, classes",
            1.0 + 2.0 * nms_named + (normalised is False),
        ),
        Candidate(
            "tf_od",
            {"outputs": roles, "boxes_normalized": True, **one_based},
            0,
            "four outputs, TensorFlow/TFLite SSD style: boxes ymin, xmin, ymax, xmax "
            f"normalised, classes ({'1' if tf_names else '0'}-based), scores, count",
            1.0 + (normalised is not False),
        ),
    ]


def segmentation(names: list[str], probes: list[dict[str, np.ndarray]]) -> list[Candidate]:
    """YOLOv8/YOLO11-seg and YOLOv5-seg: detections [1, 4+C+M, N] (or [1, N, 5+C+M]) and mask
    prototypes [1, M, h, w]. The last M columns are mask coefficients: each kept box's mask is
    sigmoid(coefficients . prototypes) inside the box (`app.core.frames.masks`)."""
    shapes = {n: probes[0][n].shape for n in names}
    protos = [n for n in names if len(shapes[n]) == 4]
    dets = [n for n in names if len(shapes[n]) == 3]
    if len(protos) != 1 or len(dets) != 1:
        return []
    m, det = shapes[protos[0]][1], dets[0]
    a, b = shapes[det][1], shapes[det][2]
    feats, transposed = min(a, b), a < b
    first = [(p[det][0].T if transposed else p[det][0])[:, :4] for p in probes]
    roles = {"detections": det, "prototypes": protos[0]}
    seg = {"mask_coefficients": m, "outputs": roles, "transposed": transposed}
    seg["boxes_normalized"] = looks_normalised(np.concatenate(first), False)
    orient = "[1, features, N]" if transposed else "[1, N, features]"
    kept = f"; {m} mask coefficients for the prototypes {protos[0]} (instance masks)"
    out = []
    if feats - m >= 5:
        out.append(
            Candidate(
                "yolov8",
                seg,
                feats - m - 4,
                f"YOLOv8/YOLO11-seg {orient}: cx, cy, w, h, {feats - m - 4} class scores{kept}",
                1.0 if transposed else 0.0,
            )
        )
    if feats - m >= 6:
        out.append(
            Candidate(
                "yolov5",
                seg,
                feats - m - 5,
                f"YOLOv5-seg {orient}: cx, cy, w, h, objectness, {feats - m - 5} class "
                f"scores{kept}",
                0.0 if transposed else 1.0,
            )
        )
    return out


def two_outputs(names: list[str], probes: list[dict[str, np.ndarray]]) -> list[Candidate]:
    """Boxes [1, N, 4] and class scores beside them: DETR's (cx, cy, w, h normalised, scores
    [1, N, C]) or, before NMS, x1, y1, x2, y2 with scores [1, N, C] or [1, C, N] (YOLO-NAS,
    DAMO-YOLO, PP-YOLOE exported without NMS). The probe boxes tell the two readings apart."""
    shapes = {n: probes[0][n].shape for n in names}
    boxes = [n for n in names if len(shapes[n]) == 3 and shapes[n][-1] == 4]
    other = [n for n in names if n not in boxes and len(shapes[n]) == 3]
    if len(boxes) != 1 or len(other) != 1:
        return []
    box, score = boxes[0], other[0]
    rows, (a, b) = shapes[box][1], shapes[score][1:]
    values = np.concatenate([p[score].ravel() for p in probes])
    cands = []
    if rows == a:
        act = score_activation(values, True, b)
        cands.append(
            Candidate(
                "detr",
                {"outputs": {"boxes": box, "logits": score}, "score_activation": act}
                | {"boxes_normalized": True},
                b - 1 if act == "softmax" else b,
                f"DETR-style boxes {box} (cx, cy, w, h normalised) and class scores {score} "
                f"({act})",
                1.0,
            )
        )
    if (rows == a and b > 1) or (rows == b and a > 1):
        transposed = rows != a
        n = a if transposed else b
        act = score_activation(values, False, n)
        first = np.concatenate([p[box][0].reshape(-1, 4) for p in probes])
        fields = {"outputs": {"boxes": box, "scores": score}, "transposed": transposed}
        fields |= {"score_activation": act, "boxes_normalized": looks_normalised(first, False)}
        kind = "probabilities" if act == "none" else "logits, sigmoid applied"
        note = (
            f"boxes in {box} (x1, y1, x2, y2) and {n} class scores in {score}"
            f"{' [1, C, N]' if transposed else ''} ({kind}), before NMS"
        )
        cands.append(Candidate("boxes_scores", fields, n, note, 1.0))
    return cands


def class_score_rows(names: list[str], probes: list[dict[str, np.ndarray]]) -> list[Candidate]:
    """PaddleDetection's export with its NMS (multiclass_nms3): rows [K, 6] of class, score, x1,
    y1, x2, y2 for the whole batch, and an integer count per image [N] saying which are whose."""
    shapes = {n: probes[0][n].shape for n in names}
    rows = [n for n in names if len(shapes[n]) == 2 and shapes[n][1] == 6]
    counts = [
        n for n in names if len(shapes[n]) == 1 and np.issubdtype(probes[0][n].dtype, np.integer)
    ]
    if len(rows) != 1 or len(counts) != 1:
        return []
    first = np.concatenate([p[rows[0]].reshape(-1, 6)[:, 2:6] for p in probes])
    fields = {"outputs": {"detections": rows[0], "count": counts[0]}}
    fields |= {"boxes_normalized": looks_normalised(first, False)}
    note = (
        f"detection rows {rows[0]} [K, 6]: class, score, x1, y1, x2, y2, counted per image by "
        f"{counts[0]} (PaddleDetection's NMS)"
    )
    return [Candidate("class_score_rows", fields, 0, note, 1.5)]


def dets_labels(names: list[str], probes: list[dict[str, np.ndarray]]) -> list[Candidate]:
    """MMDeploy's end-to-end export: dets [1, N, 5] (x1, y1, x2, y2, score) and labels [1, N];
    an instance-segmentation export's third output, masks [1, N, h, w] (probabilities over each
    box, or over the whole input), gives each detection's mask."""
    shapes = {n: probes[0][n].shape for n in names}
    dets = [n for n in names if len(shapes[n]) == 3 and shapes[n][-1] == 5]
    labels = [n for n in names if len(shapes[n]) == 2]
    masks = [n for n in names if len(shapes[n]) == 4]
    if len(dets) != 1 or len(labels) != 1 or len(names) != 2 + len(masks) or len(masks) > 1:
        return []
    rows = shapes[dets[0]][1]
    if shapes[labels[0]][1] != rows or any(shapes[m][1] != rows for m in masks):
        return []
    first = np.concatenate([p[dets[0]][0].reshape(-1, 5)[:, :4] for p in probes])
    fields = {"outputs": {"detections": dets[0], "labels": labels[0]}}
    fields["outputs"] |= {"masks": masks[0]} if masks else {}
    fields |= {"boxes_normalized": looks_normalised(first, False)}
    left = f"; instance masks {masks[0]}" if masks else ""
    note = f"end-to-end {dets[0]} (x1, y1, x2, y2, score) and class {labels[0]} (MMDeploy){left}"
    return [Candidate("end2end", fields, 0, note, 1.5)]
