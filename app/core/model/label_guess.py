"""Which class names a model gets: a preset's, its metadata's, a label file beside it, or a
fallback list (COCO's 90-id names for TensorFlow's SSDs and torchvision's detectors)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.core.model.files import read_label_file
from app.core.model.label_names import indexed_labels
from app.core.model.metadata import ModelMetadata
from app.core.model.sidecars import Sidecars
from app.core.model.spec import Postprocess, palette_color
from app.core.resources import resources_dir


def guess_labels(
    sidecars: Sidecars,
    meta: ModelMetadata,
    preset: dict[str, Any] | None,
    n_classes: int,
    post: Postprocess,
    probed: dict[str, np.ndarray],
    problems: list[str],
    notes: list[str],
) -> tuple[list[str], list[list[int]]]:
    """Names: a preset's, else the model's metadata (it describes this very file), else a label
    sidecar, else a fallback list; lines like '12  stop sign' are placed at their ids."""
    labels = indexed_labels(sidecars.labels) if sidecars.labels else None
    colors = [list(c) for c in sidecars.colors] if sidecars.colors else None
    if meta.names and not (preset and "labels" in preset):
        if labels and labels != meta.names:
            notes.append("class names from the metadata used, not the label file beside it")
            colors = None
        labels = list(meta.names)
    if preset and "labels" in preset:
        labels = list(preset["labels"])
    fallback_name = preset.get("labels_fallback") if preset else None
    if labels is None and not preset and post.decoder == "tf_od":
        fallback_name = "coco90"  # TF / TFLite SSDs are COCO's 90-id scheme unless told
        notes.append("no class names: COCO's 90-id names assumed (guessed; check them)")
    elif labels is None and not preset and post.decoder == "boxes_labels_scores":
        fallback_name = "coco90" if post.class_offset == 1 else None  # torchvision's (above)
    if labels is None and fallback_name:
        labels = indexed_labels(
            read_label_file(resources_dir() / "labels" / f"{fallback_name}.txt")
        )
    if not n_classes and post.decoder == "classifier":
        n_classes = next(iter(probed.values())).shape[-1]
    if post.decoder == "yolox_raw" and not n_classes:
        n_classes = next(iter(probed.values())).shape[1 if post.transposed else -1] - 5
    labels = labels or [f"class {i}" for i in range(n_classes)]
    if n_classes and len(labels) != n_classes:
        problems.append(
            f"the label list has {len(labels)} names but the model has {n_classes} classes; "
            + (
                "extra names ignored"
                if len(labels) > n_classes
                else "missing ones shown as numbers"
            )
        )
        labels = (labels + [f"class {i}" for i in range(len(labels), n_classes)])[:n_classes]
        if colors:
            colors = colors[:n_classes]
    if not colors or len(colors) < len(labels):
        colors = (colors or []) + [
            list(palette_color(i)[::-1]) for i in range(len(colors or []), len(labels))
        ]
    return labels, colors
