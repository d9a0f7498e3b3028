"""Frame sources: an image file, a folder (recursive), a video file or a camera index.

Each yields `Frame`s; files that cannot be read are reported through `skipped` and never stop
the run. A camera uses the same capture code as a video file.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.core.errors import UserError
from app.core.frames.imageio import ImageReadError, is_image_path, is_video_path, read_image


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    source: str  # file path, "camera:N", or the video path
    index: int  # frame number within the source


@dataclass
class Skipped:
    source: str
    reason: str


def list_images(folder: str | Path) -> list[Path]:
    """Image files under `folder`, recursively, sorted by path; extensions case-insensitive."""
    folder = Path(folder)
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, onerror=None):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            if is_image_path(path):
                found.append(path)
    return sorted(found)


def has_images(folder: str | Path) -> bool:
    """Whether `folder` holds at least one image (stops at the first: cheap on big folders)."""
    for _root, _dirs, files in os.walk(folder):
        if any(is_image_path(Path(name)) for name in files):
            return True
    return False


def read_ahead(
    paths: Iterable[Path], window: int = 4
) -> Iterator[tuple[Path, np.ndarray | ImageReadError]]:
    """(path, decoded image or the reason it cannot be read), in order, decoding up to `window`
    files ahead on one thread (decoding overlaps inference, both release the GIL) while never
    holding more than `window` images: memory stays flat in the number of files."""

    def read(path: Path) -> np.ndarray | ImageReadError:
        try:
            return read_image(path)
        except ImageReadError as exc:
            return exc

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
    try:
        pending: deque = deque()
        todo = iter(paths)
        for path in todo:
            pending.append((path, pool.submit(read, path)))
            if len(pending) >= window:
                break
        while pending:
            path, future = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(read, nxt)))
            yield path, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a stopped consumer leaves no decoding


class ImageSet:
    """A folder of images read pass by pass (evaluation: one pass per variant). Each pass decodes
    them one at a time, a few ahead, and keeps none: memory does not grow with their number
    (evaluation holding all of them took 396 MB for 256 photos, 652 MB for 512). The first pass
    records each image's size (all the metrics need) and the unreadable ones, which later passes
    skip. Cancelling is the consumer's: it checks once per image it takes."""

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = images_dir
        self.files = list_images(images_dir)
        if not self.files:
            raise UserError(f"{images_dir}: no images found for evaluation")
        self.sizes: dict[Path, tuple[int, int]] = {}
        self.skipped: list[Skipped] = []
        self.scanned = False

    def __len__(self) -> int:
        return len(self.sizes) if self.scanned else len(self.files)

    def __iter__(self) -> Iterator[tuple[Path, np.ndarray]]:
        first = not self.scanned
        files = self.files if first else [p for p in self.files if p in self.sizes]
        for path, image in read_ahead(files):
            if isinstance(image, ImageReadError):
                if first:
                    self.skipped.append(Skipped(str(path), str(image)))
                    continue
                raise UserError(f"{path}: became unreadable during evaluation ({image})")
            if first:
                self.sizes[path] = (image.shape[0], image.shape[1])
            elif self.sizes[path] != image.shape[:2]:
                raise UserError(f"{path}: changed during evaluation; run it again")
            yield path, image
        if first:
            self.scanned = True
            if not self.sizes:
                raise UserError(
                    f"{self.images_dir}: none of the {len(self.files)} images could be read"
                )

    def entries(self) -> list[tuple[Path, tuple[int, int]]]:
        """(path, (height, width)) of every readable image, in evaluation order."""
        return [(p, self.sizes[p]) for p in self.files if p in self.sizes]


def _camera_index(spec: str) -> int | None:
    text = spec.removeprefix("camera:")
    return int(text) if text.isdigit() else None


@dataclass
class FrameSource:
    """Iterate frames of one source string; `skipped` collects unreadable files."""

    spec: str
    max_frames: int | None = None
    skipped: list[Skipped] = field(default_factory=list)
    fps: float = 0.0
    kind: str = ""
    decode_threads: int | None = None  # video files: FFmpeg's threads (None: its default)

    def __post_init__(self) -> None:
        cam = _camera_index(self.spec)
        path = Path(self.spec)
        if cam is not None and not path.exists():
            self.kind = "camera"
        elif path.is_dir():
            self.kind = "folder"
        elif path.is_file() and is_video_path(path):
            self.kind = "video"
        elif path.is_file():
            self.kind = "image"
        else:
            raise UserError(
                f"{self.spec}: no such file or folder (for a webcam give its index, e.g. 0)"
            )

    def __iter__(self) -> Iterator[Frame]:
        count = 0
        for frame in self._frames():
            if self.max_frames is not None and count >= self.max_frames:
                return
            count += 1
            yield frame

    def _frames(self) -> Iterator[Frame]:
        if self.kind == "camera":
            cam = int(_camera_index(self.spec) or 0)
            yield from self._capture(cam, f"camera:{cam}")
        elif self.kind == "video":
            yield from self._capture(self.spec, self.spec)
        elif self.kind == "image":
            yield from self._read_files([Path(self.spec)])
        else:
            files = list_images(self.spec)
            if not files:
                raise UserError(
                    f"{self.spec}: no images found (looked for jpg, png, bmp, webp, tif)"
                )
            yield from self._read_files(files)

    def _read_files(self, files: list[Path]) -> Iterator[Frame]:
        for i, path in enumerate(files):
            try:
                image = read_image(path)
            except ImageReadError as exc:
                self.skipped.append(Skipped(str(path), str(exc)))
                continue
            yield Frame(image, str(path), i)

    def _capture(self, target: int | str, name: str) -> Iterator[Frame]:
        cap = open_capture(target, self.decode_threads)
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        index = 0
        try:
            while True:
                ok, image = cap.read()
                if not ok or image is None:
                    break
                yield Frame(image, name, index)
                index += 1
        finally:
            cap.release()
        if index == 0:
            self.skipped.append(Skipped(name, "no frames could be decoded"))


def open_capture(target: int | str, threads: int | None = None) -> cv2.VideoCapture:
    """Open a camera index or video file; `UserError` with a clear message when it will not open.
    `threads`: decoder threads for a video file (one saves a quarter of the decoding CPU time
    where inference already keeps every core busy)."""
    if threads and not isinstance(target, int):
        cap = cv2.VideoCapture(target, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, int(threads)])
    else:
        cap = cv2.VideoCapture(target)
    if isinstance(target, int):
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a driver-side queue would only hold stale frames
    if not cap.isOpened():
        cap.release()
        if isinstance(target, int):
            raise UserError(
                f"camera {target} did not open: no camera at that index, or another program is "
                "using it. Choose another index, or a video file."
            )
        raise UserError(f"{target}: cannot open this video (unsupported codec or corrupt file)")
    return cap
