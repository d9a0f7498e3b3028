"""What the preprocessing search shows and records: its table, the notes once accepted, and
the sample's images read from disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from app.core.eval.preprocess_search import SearchResult


def evidence_table(result: SearchResult) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the evidence, the chosen row marked '*' in the first column; a
    detector's columns say what it found, a classifier's how its answers spread."""
    if result.task == "detection":
        heads = ["", "candidate", "score", "images with finds", "objects/image", "best score"]
        heads += ["found again mirrored"]
    else:
        heads = ["", "candidate", "score", "top class", "confidence", "classes", "accuracy"]
    rows = []
    for i, ev in enumerate(result.evidence):
        row = ["*" if i == result.chosen else "", ev.candidate.name, f"{ev.score:.3f}"]
        if result.task == "detection":
            row += [f"{ev.found_share or 0:.0%}", f"{ev.objects or 0:.1f}"]
            row += [f"{ev.mean_confidence:.2f}", f"{ev.mirror_agreement or 0:.0%}"]
        else:
            acc = "" if ev.accuracy is None else f"{ev.accuracy:.0%}"
            row += [f"{ev.top_share:.0%}", f"{ev.mean_confidence:.2f}", str(ev.classes_seen), acc]
        rows.append([*row, "check preprocessing" if ev.alarm else ""])
    return [*heads, "alarm"], rows


def accepted_notes(notes: list[str], result: SearchResult) -> list[str]:
    """The spec's notes once the user accepted the found preprocessing: guesses about pixels
    are replaced by what the user chose, and on what evidence."""
    keep = [
        n
        for n in notes
        if not (
            ("guessed" in n and ("mean/std" in n or "resize mode" in n or "normalis" in n))
            or n.startswith("preprocessing found on")
        )
    ]
    ev = result.choice
    if ev.objects is not None:
        found = ev.found_share or 0.0
        how = (
            f"objects found in {found:.0%} of them, best score {ev.mean_confidence:.2f}, "
            f"{ev.mirror_agreement or 0:.0%} found again mirrored"
        )
    elif ev.accuracy is not None:
        how = f"accuracy {ev.accuracy:.0%}"
    else:
        how = f"top class share {ev.top_share:.0%}, mean confidence {ev.mean_confidence:.2f}"
    keep.append(
        f"preprocessing found on {result.images} of your images: {ev.candidate.name} "
        f"({how}; set by you)"
    )
    return keep


def read_images(paths: list[Path]) -> tuple[list[np.ndarray], list[Path]]:
    """(BGR images, their paths) of the readable ones among `paths`."""
    images, kept = [], []
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None and img.size:
            images.append(img)
            kept.append(path)
    return images, kept
