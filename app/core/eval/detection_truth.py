"""A detector's ground truth for evaluation: YOLO .txt labels or a COCO JSON, with the labels'
classes matched to the model's by name.

Why by name: label files number classes their own way. A COCO JSON uses COCO's category ids
(1..90 with gaps), YOLO labels use 0..79, and a model may use either or its own order
(Google's TFLite COCO SSD: 90 ids, 0-based). Compared by number, YOLOX-Nano against
instances_val2017.json or the SSD against YOLO labels scored boxes of one class as another
(the SSD: 3.6 mAP50-95 on coco-val-dev64, with every box off by its class). So when the labels
name their classes (a COCO JSON's categories; a YOLO data.yaml `names` or classes.txt beside
the labels), each is matched to the model's class of that name; when they do not, or no name
matches, classes are compared by number as before, and the report says which was done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.errors import UserError
from app.core.eval.labels import label_key, label_lookup
from app.core.eval.metrics import load_coco_json, yolo_labels_to_coco
from app.core.model.sidecars import parse_labels_txt

NAME_FILES = ("data.yaml", "dataset.yaml", "classes.txt")


def dataset_class_names(labels_dir: Path) -> tuple[list[str] | None, str]:
    """The class names a YOLO label folder comes with (a data.yaml / dataset.yaml `names`, or a
    classes.txt, in the folder or beside it) and the file read; (None, "") when there is none.
    A file that cannot be read as such is ignored (the labels are then compared by number)."""
    import yaml

    for folder in (labels_dir, labels_dir.parent):
        for name in NAME_FILES:
            path = folder / name
            if not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
                if name == "classes.txt":
                    return parse_labels_txt(text), str(path)
                names = (yaml.safe_load(text) or {}).get("names")
            except (OSError, ValueError, UnicodeDecodeError, AttributeError, yaml.YAMLError):
                continue
            if isinstance(names, dict) and all(isinstance(k, int) for k in names):
                names = [str(names.get(i, i)) for i in range(max(names) + 1)]
            if isinstance(names, list) and names:
                return [str(n) for n in names], str(path)
    return None, ""


def align_classes(gt: dict[str, Any], model_labels: list[str]) -> tuple[dict[str, Any], dict]:
    """`gt` with its category ids replaced by the model's class indices, matched by name (see
    module doc), and what was done: {"by": "name" | "number", "matched", "of", "dropped_boxes",
    "unmatched" (label class names the model has no class for), "note"}."""
    cats = gt.get("categories") or []
    names = {c["id"]: str(c.get("name", "")) for c in cats if "id" in c}
    lookup = label_lookup(model_labels)
    to_model = {
        cid: lookup[key] for cid, name in names.items() if (key := label_key(name)) in lookup
    }
    used = {a["category_id"] for a in gt.get("annotations", [])}
    if not to_model:
        note = ""
        if any(not n.isdigit() for n in names.values()):  # named, but none like the model's
            shown = ", ".join(sorted({names[c] for c in used if c in names})[:4])
            note = (
                f"none of the labels' class names ({shown}, …) is a class of the model; "
                "classes were compared by number"
            )
        return gt, {"by": "number", "note": note}
    kept = [a for a in gt["annotations"] if a["category_id"] in to_model]
    unmatched = sorted({names.get(c, str(c)) for c in used if c not in to_model})
    out = dict(gt)
    out["annotations"] = [{**a, "category_id": to_model[a["category_id"]]} for a in kept]
    out["categories"] = [
        {"id": i, "name": str(model_labels[i])} for i in sorted(set(to_model.values()))
    ]
    dropped = len(gt["annotations"]) - len(kept)
    info = {
        "by": "name",
        "matched": len({c for c in used if c in to_model}),
        "of": len(used),
        "dropped_boxes": dropped,
        "unmatched": unmatched,
        "note": (
            f"{dropped} labelled boxes of {len(unmatched)} classes the model does not have "
            f"({', '.join(unmatched[:4])}{', …' if len(unmatched) > 4 else ''}) are not scored"
            if dropped
            else ""
        ),
    }
    return out, info


def detection_truth(
    model_labels: list[str],
    sizes: list[tuple[Path, int, int]],
    images_dir: Path,
    labels_dir: str | Path | None,
    coco_json: str | Path | None,
) -> tuple[dict[str, Any] | None, str, dict]:
    """(COCO-style ground truth with the model's class indices, the labels read, how classes
    were matched) for images of (path, height, width); (None, "", {}) when the folder has no
    labels and none were given. A given labels folder without .txt files is a UserError."""
    missing: list[Path] = []  # images without a YOLO label file
    if coco_json:
        gt, source = load_coco_json(Path(coco_json), sizes), str(coco_json)
    else:
        guess = Path(labels_dir) if labels_dir else images_dir.parent / "labels"
        if not (guess.is_dir() and any(guess.glob("*.txt"))):
            if labels_dir and not guess.exists():
                raise UserError(f"{labels_dir}: no such folder; give the folder of the labels")
            if labels_dir:
                raise UserError(f"{labels_dir}: no YOLO .txt label files found")
            return None, "", {}
        names, _ = dataset_class_names(guess)
        gt = yolo_labels_to_coco(sizes, guess, len(model_labels), names)
        source = str(guess)
        missing = [p for p, _, _ in sizes if not (guess / f"{p.stem}.txt").is_file()]
        if sizes and not gt["annotations"]:
            raise UserError(
                f"{guess}: no label file there is named like these {len(sizes)} images (e.g. "
                f"{sizes[0][0].stem}.txt), or they are all empty; give the labels of this folder "
                "(YOLO: one IMAGE_NAME.txt per image)"
            )
    gt, classes = align_classes(gt, model_labels)
    if missing:  # YOLO's convention, but often a labels folder half copied
        said = (
            f"{len(missing)} of {len(sizes)} images have no label file in {guess} (e.g. "
            f"{missing[0].stem}.txt): scored as images with no objects, YOLO's convention for "
            "background images; if they are only unlabelled, evaluate a folder of the labelled ones"
        )
        classes = {**classes, "note": "; ".join(filter(None, [classes.get("note"), said]))}
    return gt, source, classes
