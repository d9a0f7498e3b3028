"""Accuracy metrics: COCO mAP through faster-coco-eval, classifier top-k, agreement with FP32."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import UserError
from app.core.frames.postprocess import Detections


def yolo_labels_to_coco(
    images: list[tuple[Path, int, int]],
    labels_dir: Path,
    n_classes: int,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """COCO ground truth from YOLO txt labels (`cls cx cy w h`, normalised) named like the images.

    images: (path, height, width). Images without a label file are background (no boxes).
    `names`: the label set's class names by index (its data.yaml), when known.
    """
    gt: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    names = names or []
    gt["categories"] = [
        {"id": i, "name": names[i] if i < len(names) else str(i)}
        for i in range(max(n_classes, len(names)))
    ]
    ann_id = 1
    for img_id, (path, h, w) in enumerate(images, start=1):
        gt["images"].append({"id": img_id, "file_name": path.name, "height": h, "width": w})
        label_file = labels_dir / f"{path.stem}.txt"
        if not label_file.is_file():
            continue
        for line_no, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                cls, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:5])
            except (ValueError, TypeError) as exc:
                raise UserError(
                    f"{label_file}:{line_no}: expected 'class cx cy w h' (YOLO format)"
                ) from exc
            x, y, bw_px, bh_px = (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h
            gt["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": img_id,
                    "category_id": cls,
                    "iscrowd": 0,
                    "bbox": [x, y, bw_px, bh_px],
                    "area": bw_px * bh_px,
                }
            )
            ann_id += 1
    return gt


def detections_to_coco(per_image: list[Detections], max_det: int = 100) -> list[dict[str, Any]]:
    out = []
    for img_id, dets in enumerate(per_image, start=1):
        order = np.argsort(-dets.scores)[:max_det]
        for i in order:
            x1, y1, x2, y2 = (float(v) for v in dets.boxes[i])
            out.append(
                {
                    "image_id": img_id,
                    "category_id": int(dets.class_ids[i]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(dets.scores[i]),
                }
            )
    return out


def coco_map(gt: dict[str, Any], dets: list[dict[str, Any]]) -> dict[str, float]:
    """mAP50-95 and mAP50 (percent) with faster-coco-eval (the pycocotools algorithm)."""
    from faster_coco_eval import COCO, COCOeval_faster

    if not gt["annotations"]:
        raise UserError(
            "no ground-truth boxes found for these images: no label file is named like them, or "
            "the files are empty; check that the labels are for this folder (YOLO: one "
            "IMAGE_NAME.txt per image)"
        )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt)
        if not dets:
            return {"mAP50_95": 0.0, "mAP50": 0.0}
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=lambda *a: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {
        "mAP50_95": round(float(ev.stats[0]) * 100, 2),
        "mAP50": round(float(ev.stats[1]) * 100, 2),
    }


def load_coco_json(path: Path, images: list[tuple[Path, int, int]]) -> dict[str, Any]:
    """COCO ground truth from a COCO JSON file, re-indexed to our image order by file name."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        by_name = {im["file_name"].split("/")[-1]: im for im in data["images"]}
        anns = data["annotations"]
        cats = data["categories"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a COCO annotation JSON ({exc})") from exc
    remap = {}
    gt: dict[str, Any] = {"images": [], "annotations": [], "categories": cats}
    for img_id, (p, h, w) in enumerate(images, start=1):
        gt["images"].append({"id": img_id, "file_name": p.name, "height": h, "width": w})
        if p.name in by_name:
            remap[by_name[p.name]["id"]] = img_id
    for i, ann in enumerate(anns, start=1):
        if ann.get("image_id") in remap:
            gt["annotations"].append({**ann, "id": i, "image_id": remap[ann["image_id"]]})
    return gt


def agreement_gt(reference: list[Detections], images, conf: float = 0.3) -> dict[str, Any]:
    """Treat the FP32 model's confident detections as ground truth (for folders without labels)."""
    gt: dict[str, Any] = {"images": [], "annotations": []}
    classes = set()
    ann_id = 1
    for img_id, ((p, h, w), dets) in enumerate(zip(images, reference), start=1):
        gt["images"].append({"id": img_id, "file_name": p.name, "height": h, "width": w})
        for i in np.flatnonzero(dets.scores >= conf):
            x1, y1, x2, y2 = (float(v) for v in dets.boxes[i])
            cid = int(dets.class_ids[i])
            classes.add(cid)
            gt["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": img_id,
                    "category_id": cid,
                    "iscrowd": 0,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                }
            )
            ann_id += 1
    gt["categories"] = [{"id": c, "name": str(c)} for c in sorted(classes)]
    return gt


def topk_accuracy(probs: np.ndarray, truth: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float((top == truth[:, None]).any(axis=1).mean() * 100)
