"""Recognise a detector's output layout from its graph outputs and probe runs on frames.

Shape alone is ambiguous ([1, 6, N] vs [1, N, 6]; 84 columns as 80 classes without objectness or
79 with it; a raw YOLOX grid vs decoded boxes of the same size), so every layout the shapes allow
is read on the probe outputs and kept only when its reading is plausible: scores in 0..1, class
columns whole numbers, confident boxes inside the image with positive, non-tiny sizes and not
firing everywhere. Among the plausible readings, priors decide: the class count the names say,
the usual orientation of each family, and whether column 4 behaves like an objectness score.
"""

from __future__ import annotations

import numpy as np

from app.core.model.output_readings import Candidate, Reading, read_candidate
from app.core.model.paired_outputs import (
    class_score_rows,
    dets_labels,
    four_outputs,
    looks_normalised,
    score_activation,
    segmentation,
    two_outputs,
)

STRIDES = (8, 16, 32)
CONFIDENT = 0.25


def grid_anchors(hw: tuple[int, int], strides: tuple[int, ...] = STRIDES) -> int:
    return sum((hw[0] // s) * (hw[1] // s) for s in strides)


def _one_output(name: str, arrs: list[np.ndarray], hw: tuple[int, int]) -> list[Candidate]:
    a, b = arrs[0].shape[1], arrs[0].shape[2]
    feats, rows, transposed = min(a, b), max(a, b), a < b
    grid = rows == grid_anchors(hw)
    cands: list[Candidate] = []
    first = [(x[0].T if transposed else x[0])[:, :4] for x in arrs]
    norm = looks_normalised(np.concatenate(first), False)
    orient = "[1, features, N]" if transposed else "[1, N, features]"
    if feats > 6 and grid:
        # exports that end in a Transpose (for a runtime that wants features first) give the
        # same grid as [1, 5+C, A]
        cands.append(
            Candidate(
                "yolox_raw",
                {"transposed": True} if transposed else {},
                feats - 5,
                f"YOLOX raw grid on strides 8/16/32{' ' + orient if transposed else ''}",
                1.0,
            )
        )
    if feats == 6:
        # six columns are nearly always already-decoded boxes, not a one- or two-class YOLO
        t = {"transposed": transposed, "boxes_normalized": norm}
        cands.append(
            Candidate("end2end", t, 0, "end-to-end x1, y1, x2, y2, score, class", 1.5 + (not grid))
        )
        if not transposed:
            cands.append(
                Candidate(
                    "boxes_xywh_cls_prob", {}, 0, "x, y, w, h, class, prob (tutorial)", 1.5 + grid
                )
            )
    if feats >= 5:
        cands.append(
            Candidate(
                "yolov8",
                {"transposed": transposed, "boxes_normalized": norm},
                feats - 4,
                f"YOLOv8/YOLO11 {orient}: cx, cy, w, h, {feats - 4} class scores",
                1.0 if transposed else 0.0,
            )
        )
        logits = np.concatenate([(x[0].T if transposed else x[0])[:, 4:].ravel() for x in arrs])
        act = score_activation(logits, False, feats - 4)
        cands.append(
            Candidate(
                "detr",
                {"transposed": transposed, "score_activation": act, "boxes_normalized": True},
                feats - 4,
                f"DETR-style {orient}: cx, cy, w, h normalised, {feats - 4} classes ({act})",
                1.0 if not transposed and rows <= 1000 else 0.0,
            )
        )
    if feats >= 6:
        cands.append(
            Candidate(
                "yolov5",
                {"transposed": transposed, "boxes_normalized": norm},
                feats - 5,
                f"YOLOv5/v7 {orient}: cx, cy, w, h, objectness, {feats - 5} class scores",
                0.0 if transposed else 1.0,
            )
        )
    return cands


TF_API_ROLES = {
    "boxes": "detection_boxes",
    "classes": "detection_classes",
    "scores": "detection_scores",
    "count": "num_detections",
}


def _tf_api_outputs(names: list[str]) -> Candidate | None:
    """The TensorFlow Object Detection API's named outputs (often among several more, e.g.
    raw_detection_scores): boxes ymin, xmin, ymax, xmax normalised, 1-based classes."""
    by_name = {n.lower().split(":")[0]: n for n in names}
    if not all(v in by_name for v in TF_API_ROLES.values()):
        return None
    roles = {role: by_name[name] for role, name in TF_API_ROLES.items()}
    fields = {"outputs": roles, "boxes_normalized": True, "class_offset": 1}
    note = "TensorFlow Object Detection API outputs (boxes ymin, xmin, ymax, xmax normalised, "
    return Candidate("tf_od", fields, 0, note + "1-based classes, scores, count)", 3.0)


def candidates(probes: list[dict[str, np.ndarray]], hw: tuple[int, int]) -> list[Candidate]:
    """Every layout the output shapes allow (detectors only)."""
    names = list(probes[0])
    tf_api = _tf_api_outputs(names)
    if tf_api:
        return [tf_api]
    if len(names) == 1 and probes[0][names[0]].ndim == 3:
        return _one_output(names[0], [p[names[0]] for p in probes], hw)
    if len(names) == 1 and probes[0][names[0]].ndim == 2 and probes[0][names[0]].shape[1] == 7:
        rows = np.concatenate([p[names[0]] for p in probes])
        fields = {"boxes_normalized": looks_normalised(rows[:, 1:5], False)}
        row = "detection rows [K, 7]: image index, x1, y1, x2, y2"
        return [  # the probe run tells them apart: a class column holds whole numbers
            Candidate("batch_rows", fields, 0, f"{row}, class, score (YOLOv7 end2end)", 1.0),
            Candidate(
                "batch_rows",
                fields | {"score_first": True},
                0,
                f"{row}, score, class (YOLO-NAS flat format)",
                1.0,
            ),
        ]
    if len(names) == 4:
        return four_outputs(names, probes)
    if len(names) == 2:
        return (
            two_outputs(names, probes)
            + segmentation(names, probes)
            + dets_labels(names, probes)
            + class_score_rows(names, probes)
        )
    if len(names) == 3:  # MMDeploy's instance segmentation: dets, labels, masks
        return dets_labels(names, probes)
    return []


def _objectness_cue(cand: Candidate, probes: list[dict[str, np.ndarray]]) -> float:
    """For a YOLOv5 reading: + when column 4 rises with every confident class (objectness),
    - when it does not (then it is a class of its own, as in a transposed YOLOv8 output)."""
    name = cand.fields.get("outputs", {}).get("detections")
    if cand.decoder != "yolov5" or (len(probes[0]) != 1 and not name):
        return 0.0
    t, m = cand.fields.get("transposed"), cand.fields.get("mask_coefficients", 0)
    rows = np.concatenate(
        [(x[0].T if t else x[0]) for p in probes for x in ([p[name]] if name else p.values())]
    )
    rows = rows[:, : rows.shape[1] - m]
    if rows.shape[1] < 7:
        return 0.0
    # with objectness, obj * class is confident on every object; if column 4 is a class of its
    # own, it is almost never confident together with another class
    both = int(np.sum(rows[:, 4] * rows[:, 5:].max(axis=1) >= CONFIDENT))
    any_class = int(np.sum(rows[:, 4:].max(axis=1) >= CONFIDENT))
    if both >= 3:
        return 2.0
    return -2.0 if any_class >= 3 and both == 0 else 0.0


def plausible(reading: Reading, hw: tuple[int, int]) -> tuple[bool, str, int]:
    """(ok, why, evidence: 0 none, 1 low-score rows only, 2 confident boxes) for one reading."""
    h, w = hw
    picked, evidence, crowded = [], 0, 0
    for boxes, scores in zip(reading.boxes, reading.scores):
        if not np.all(np.isfinite(scores)) or (scores.size and (scores.min() < -1e-3)):
            return False, "scores are not finite or negative", 0
        if scores.size and scores.max() > 1.0 + 1e-3:
            return False, "scores above 1", 0
        real = ~np.all(boxes == 0, axis=1)  # all-zero boxes pad a fixed-size output
        boxes, scores = boxes[real], scores[real]
        conf = scores >= CONFIDENT
        if conf.any():
            crowded += int(conf.sum() > max(50, 0.1 * scores.size))
            picked.append(boxes[conf])
            evidence = 2
        elif scores.size:
            picked.append(boxes[np.argsort(-scores)[:5]])
            evidence = max(evidence, 1)
    if reading.problem:
        return False, reading.problem, 0
    if not picked or not sum(len(p) for p in picked):
        return True, "no boxes on the probe frames", 0
    b = np.concatenate(picked).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        good = (
            np.all(np.isfinite(b), axis=1)
            & (bw >= 2)
            & (bh >= 2)
            & (b[:, 0] >= -0.1 * w)
            & (b[:, 1] >= -0.1 * h)
            & (b[:, 2] <= 1.1 * w)
            & (b[:, 3] <= 1.1 * h)
        )
    share = float(good.mean())
    if share < 0.8:
        return False, f"only {share:.0%} of its boxes lie in the image with sane sizes", evidence
    if crowded * 2 > len(reading.scores):  # one crowded photo is not enough to say
        return False, "it finds objects nearly everywhere", evidence
    return True, f"{share:.0%} of its boxes lie in the image with sane sizes", evidence


def recognise(
    probes: list[dict[str, np.ndarray]], hw: tuple[int, int], n_names: int | None
) -> tuple[Candidate | None, list[str], set[str]]:
    """The most plausible reading of a detector's outputs (None when nothing fits), notes
    saying what was weighed, and every decoder whose reading was plausible."""
    notes: list[str] = []
    best: tuple[float, Candidate] | None = None
    fits: set[str] = set()
    for cand in candidates(probes, hw):
        ok, why, evidence = plausible(read_candidate(cand, probes, hw), hw)
        if not ok:
            notes.append(f"not {cand.decoder}: {why}")
            continue
        fits.add(cand.decoder)
        total = cand.prior + _objectness_cue(cand, probes) + 0.5 * evidence
        if n_names and cand.n_classes == n_names:
            total += 3.0
        if best is None or total > best[0]:
            best = (total, cand)
    if best is not None:
        notes.insert(0, f"outputs read as {best[1].note}")
    return (best[1] if best else None), notes, fits
