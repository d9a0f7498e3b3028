"""Find a classifier's preprocessing on a folder of the user's images (and its labels, if any).

Reads a spread sample of the folder, the class labels the folder carries (class-named
subfolders or a CSV, as evaluation reads them) and runs `preprocess_search` on them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.core.errors import CancelToken, UserError
from app.core.eval.labels import class_labels
from app.core.eval.preprocess_search import SAMPLE_SIZE, SearchResult, sample, search_preprocessing
from app.core.eval.search_report import read_images
from app.core.frames.postprocess import Detections, postprocess_detections
from app.core.frames.preprocess import Geometry
from app.core.frames.sources import list_images
from app.core.model.spec import ModelSpec, Preprocess


def detector(spec: ModelSpec):
    """One image's outputs decoded as the app decodes them, boxes in input pixels."""

    def detect(outputs: list, pre: Preprocess) -> Detections:
        h, w = pre.size
        return postprocess_detections(outputs, spec, Geometry(1, 1, 0, 0, w, h, w, h))

    return detect


def find_preprocessing(
    spec: ModelSpec,
    folder: str | Path,
    labels: str | Path | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> SearchResult:
    """The search on ~32 images of `folder`; labelled by `labels` (CSV or folder), else by
    whatever the folder itself carries. UserError when the folder has no readable image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; choose a folder of your own images")
    images, paths = read_images(sample(list_images(folder), SAMPLE_SIZE))
    if not images:
        raise UserError(f"{folder}: no readable images; choose a folder of photos")
    classifier = spec.task == "classification"
    found = class_labels(spec.labels, paths, folder, labels) if classifier and spec.labels else None
    truth = found.truth if found is not None and found.labelled else None
    stop = (lambda: cancel.cancelled) if cancel is not None else None
    detect = detector(spec) if spec.task == "detection" else None
    return search_preprocessing(
        spec, images, truth, progress=progress, cancelled=stop, detect=detect
    )
