"""Calibration images: a reproducible sample of the user's folder, decoded and preprocessed ahead
of the model in a bounded window (memory does not grow with the folder)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from app.core.errors import CancelToken, UserError
from app.core.frames.imageio import ImageReadError, read_image
from app.core.frames.preprocess import Preprocessor
from app.core.frames.sources import Skipped, list_images
from app.core.model.spec import ModelSpec

RECOMMENDED_IMAGES = 200  # the tutorials' advice for calibration set size


def select_images(
    images_dir: str | Path,
    count: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[list[Path], list[str]]:
    """Pick calibration images reproducibly: all, `count` of them, or `fraction` of them."""
    folder = Path(images_dir)
    if not folder.is_dir():
        raise UserError(
            f"{folder}: not a folder; choose the folder holding your calibration images"
        )
    files = list_images(folder)
    if not files:
        raise UserError(
            f"{folder}: no images found (looked recursively for jpg, png, bmp, webp, tif); "
            "choose a folder of photos like the ones the model will see"
        )
    if count is not None and fraction is not None:
        raise UserError("give either a count or a fraction of images, not both")
    n = len(files)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise UserError(f"fraction must be in (0, 1], not {fraction}")
        n = max(1, round(len(files) * fraction))
    elif count is not None:
        if count < 1:
            raise UserError(f"count must be at least 1, not {count}")
        n = min(count, len(files))
    rng = np.random.default_rng(seed)
    chosen = sorted(files[i] for i in rng.choice(len(files), size=n, replace=False))
    return chosen, few_images_warnings(n)


def few_images_warnings(used: int, chosen: int | None = None) -> list[str]:
    """The warning for a calibration on fewer images than advised; `chosen`, when more were
    chosen than could be read."""
    if used >= RECOMMENDED_IMAGES:
        return []
    what = (
        f"{used} readable calibration images (of {chosen} chosen)"
        if chosen and chosen > used
        else f"{used} calibration images"
    )
    return [
        f"only {what}; about {RECOMMENDED_IMAGES} or more that look like your real inputs give "
        "steadier INT8 ranges"
    ]


class CalibrationReader:
    """Yields preprocessed batches while a thread pool decodes the next images.

    OpenCV releases the GIL while decoding and resizing, so on two cores decoding overlaps the
    model's own inference instead of alternating with it.
    """

    def __init__(
        self,
        spec: ModelSpec,
        files: list[Path],
        batch: int = 1,
        workers: int = 2,
        cancel: CancelToken | None = None,
    ) -> None:
        self.spec = spec
        self.files = files
        self.batch = batch
        self.workers = workers
        self.cancel = cancel or CancelToken()
        self.skipped: list[Skipped] = []
        self.used: list[str] = []
        self.done = 0
        self.started = 0  # files handed to a decoder so far (bounded ahead of `done`)
        self.pre = Preprocessor(spec.preprocess)

    def _load(self, path: Path) -> tuple[Path, np.ndarray | None, str]:
        self.started += 1
        try:
            image = read_image(path)
        except ImageReadError as exc:
            return path, None, str(exc)
        tensor, _ = self.pre.batch([image])
        return path, tensor[0], ""

    def __iter__(self) -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []
        # A bounded window of decodes ahead of the consumer, in file order. (Executor.map submits
        # every file at once, so decoded images piled up while inference consumed them: 1.4 GB
        # RSS for 512 images.) Two per worker keeps both cores busy on two-core machines.
        ahead = max(2, 2 * self.workers)
        files = iter(self.files)
        window: deque[Future] = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="calib-decode") as pool:
            try:
                for path in itertools.islice(files, ahead):
                    window.append(pool.submit(self._load, path))
                while window:
                    path, tensor, reason = window.popleft().result()
                    nxt = next(files, None)
                    if nxt is not None:
                        window.append(pool.submit(self._load, nxt))
                    self.cancel.check()
                    self.done += 1
                    if tensor is None:
                        self.skipped.append(Skipped(str(path), reason))
                        continue
                    self.used.append(str(path))
                    pending.append(tensor)
                    if len(pending) == self.batch:
                        yield np.stack(pending)
                        pending = []
            finally:
                for future in window:
                    future.cancel()
        if pending:
            yield np.stack(pending)
