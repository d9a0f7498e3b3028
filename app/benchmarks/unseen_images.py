"""The issue-17 evaluation protocol's image sets, laid out as folders `evaluate` reads: the
"tuning" half of coco-val-dev64 (photos 1-32 by sorted file name, with labels), the "unseen"
half (photos 33-64, with labels) and every 10th frame of the videos (unlabelled: agreement with
FP32 only). Reports use only the unseen sets; nothing that chooses a recipe may look at them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2

from app.core.atomic import atomic_path
from app.core.frames.sources import FrameSource, list_images

DEV64 = "coco-val-dev64"
TUNING_PHOTOS = 32  # photos 1-32 of dev64 may be looked at; 33-64 are for reporting only
FRAME_STEP = 10


def dev64_half(assets: Path, out: Path, half: str) -> Path:
    """Copy photos 1-32 (`half` "tuning") or 33-64 ("unseen") of coco-val-dev64, with their
    YOLO label files, into `out/images` and `out/labels`; returns the images folder."""
    if half not in ("tuning", "unseen"):
        raise ValueError(f"half is 'tuning' or 'unseen', not {half!r}")
    root = assets / "images" / DEV64
    photos = list_images(root / "images")
    chosen = photos[:TUNING_PHOTOS] if half == "tuning" else photos[TUNING_PHOTOS:]
    images, labels = out / "images", out / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for photo in chosen:
        shutil.copy(photo, images / photo.name)
        label = root / "labels" / f"{photo.stem}.txt"
        if label.is_file():  # a background photo has no label file
            shutil.copy(label, labels / label.name)
    return images


def video_frames(assets: Path, out: Path, step: int = FRAME_STEP) -> Path:
    """Every `step`-th frame of each video in `assets/videos`, as lossless PNG files named
    <video>_<frame>.png in `out` (no labels: FP32's own detections are the reference)."""
    out.mkdir(parents=True, exist_ok=True)
    for video in sorted((assets / "videos").glob("*.mp4")):
        for frame in FrameSource(str(video)):
            if frame.index % step:
                continue
            with atomic_path(out / f"{video.stem}_{frame.index:05d}.png") as part:
                # the .part name has no image suffix: say which encoder to use
                ok, data = cv2.imencode(".png", frame.image)
                if not ok:
                    raise RuntimeError(f"{video}: frame {frame.index} could not be encoded")
                part.write_bytes(data.tobytes())
    return out
