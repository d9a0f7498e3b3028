"""Read one image file robustly into BGR uint8, or say exactly why it cannot be used.

OpenCV decodes from bytes (so non-ASCII paths work everywhere) and applies EXIF orientation,
CMYK, 16-bit, grey and alpha conversions itself; Pillow is the fallback for formats OpenCV lacks.
"""

from __future__ import annotations

import errno
import stat
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".jp2",
    ".pgm",
    ".ppm",
}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
MAX_PIXELS = 120_000_000  # 8K is 33 MP; beyond this a "photo" is almost surely a decompression bomb


class ImageReadError(Exception):
    """The file cannot be used as an image; `str()` is the reason shown in "skipped" lists."""


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _looks_truncated(data: np.ndarray, suffix: str) -> bool:
    """JPEGs end with FFD9 and PNGs with an IEND chunk; a cut-off file lacks them."""
    tail = data[-64:].tobytes()
    if suffix in (".jpg", ".jpeg") and data[:2].tobytes() == b"\xff\xd8":
        return b"\xff\xd9" not in tail
    if suffix == ".png" and data[:8].tobytes() == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in tail
    return False


def _pil_size(path: Path) -> tuple[int, int] | None:
    """Dimensions from the header alone (no decode), to refuse decompression bombs early."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(path) as im:
            return im.size
    except Image.DecompressionBombError as exc:  # Pillow's own limit: far past ours
        raise ImageReadError(f"image too large ({exc}); limit 120 MP") from exc
    except Exception:  # Pillow raises many types for non-images; OpenCV gets its own try below
        return None


def read_image(path: str | Path) -> np.ndarray:
    """Decode `path` into an HxWx3 BGR uint8 array; raise `ImageReadError` with the reason."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            # a FIFO or device would block or stream forever; it is never a photo
            raise ImageReadError(f"not a regular file ({_file_kind(info.st_mode)}); skip it")
        size = info.st_size
        if size == 0:
            raise ImageReadError("empty file (0 bytes)")
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(os_error_reason(path, exc)) from exc
    dims = _pil_size(path)
    if dims and dims[0] * dims[1] > MAX_PIXELS:
        raise ImageReadError(f"image too large ({dims[0]}x{dims[1]} pixels; limit 120 MP)")
    if _looks_truncated(data, path.suffix.lower()):
        raise ImageReadError("truncated file (image data ends early); re-copy or re-export it")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        img = _read_with_pillow(path)
    if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
        raise ImageReadError(f"unexpected decoded shape {img.shape}")
    return img


def os_error_reason(path: Path, exc: OSError) -> str:
    """Why `path` cannot be read, in the words of a "skipped" list."""
    if isinstance(exc, PermissionError):
        return "permission denied; check the file's permissions"
    if isinstance(exc, FileNotFoundError):
        if path.is_symlink():
            return "broken symbolic link (its target does not exist)"
        return "file disappeared while reading"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (the link points back at itself)"
    return f"cannot read file ({exc.strerror or exc})"


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def _read_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                arr = (arr / max(1.0, float(arr.max())) * 255.0).astype(np.uint8)
                return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
            rgb = np.asarray(im.convert("RGB"))
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    except Exception as exc:  # any decoder failure means "not an image we can use"
        raise ImageReadError("not a readable image (unknown format or corrupt data)") from exc
