"""Make a folder of awkward image files (bad and valid) from a real photo, for bad-input tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

VALID = [
    "grey.jpg",
    "rgba.png",
    "sixteen_bit.png",
    "cmyk.jpg",
    "exif_rotated.jpg",
    "huge_8k.jpg",
    "tiny_3x2.png",
    "ünïcödé name ✓.jpg",
    "UPPER.JPG",
    "sub/nested.bmp",
]
INVALID = {
    "zero_bytes.jpg": "empty",
    "text_named.jpg": "not a readable image",
    "truncated.jpg": "truncated",
}


def make_awkward_folder(folder: Path, photo: Path) -> Path:
    """Write every kind of file the issues list into `folder`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir(exist_ok=True)
    bgr = cv2.imread(str(photo))
    rgb = Image.fromarray(bgr[:, :, ::-1])
    rgb.convert("L").save(folder / "grey.jpg")
    rgb.convert("RGBA").save(folder / "rgba.png")
    cv2.imwrite(str(folder / "sixteen_bit.png"), bgr.astype(np.uint16) * 257)
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    exif = rgb.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rgb.save(folder / "exif_rotated.jpg", exif=exif)
    cv2.imwrite(
        str(folder / "huge_8k.jpg"), cv2.resize(bgr, (7680, 4320)), [cv2.IMWRITE_JPEG_QUALITY, 60]
    )
    cv2.imwrite(str(folder / "tiny_3x2.png"), bgr[:2, :3])
    rgb.save(folder / "ünïcödé name ✓.jpg")
    rgb.save(folder / "UPPER.JPG")
    cv2.imwrite(str(folder / "sub" / "nested.bmp"), bgr)
    (folder / "zero_bytes.jpg").write_bytes(b"")
    (folder / "text_named.jpg").write_text("definitely not a JPEG\n")
    data = cv2.imencode(".jpg", bgr)[1].tobytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("ignored: not an image extension")
    return folder
