"""The images a search may tune on and the images it is checked on: a labelled folder plus an
unlabelled pool (folders minus the calibration images, every Nth frame of videos), split the same
way every time into a search part and a held-out part that the search never sees.

Every `hold_out_every`-th image of each source (sorted file names, or frame order) is held out,
so both parts sample every source alike and a rerun splits identically. Files are decoded again
on each pass (memory does not grow with the pool); sampled video frames are kept as JPEG bytes
(quality 95: a few hundred kB each), decoded per pass like a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.core.errors import CancelToken, UserError
from app.core.frames.imageio import ImageReadError, is_video_path
from app.core.frames.sources import Skipped, list_images, open_capture, read_ahead

HOLD_OUT_EVERY = 4  # every 4th image held out: 75% to tune on, 25% to check on
VIDEO_STEP = 10  # every 10th frame: neighbouring frames are near duplicates
MAX_VIDEO_FRAMES = 200  # sampled frames per video, at most
MAX_SEARCH_IMAGES = 160  # beyond this, search trials run on a subset (labelled images first)
MAX_HELD_OUT_IMAGES = 200
JPEG_QUALITY = 95


@dataclass
class PoolItem:
    """One image of the pool: a file, or a sampled video frame held as JPEG bytes."""

    path: Path  # the file; for a frame "<video>#<frame number>.jpg" (a name, not a file)
    source: str  # the folder or video it came from
    labelled: bool  # from the labelled folder (its labels, where it has some, score it)
    size: tuple[int, int] = (0, 0)  # (height, width)
    frame: bytes | None = None

    def read(self) -> np.ndarray:
        """The BGR image."""
        if self.frame is None:
            from app.core.frames.imageio import read_image

            return read_image(self.path)
        image = cv2.imdecode(np.frombuffer(self.frame, np.uint8), cv2.IMREAD_COLOR)
        if image is None:  # cannot happen for bytes we encoded; say so rather than crash
            raise UserError(f"{self.path}: a sampled frame could not be decoded again")
        return image


class PoolPart:
    """One part (search or held out): iterable of (path, BGR image) like ImageSet, as many
    times as there are variants to run."""

    def __init__(self, items: list[PoolItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[Path, np.ndarray]]:
        files = [it for it in self.items if it.frame is None]
        decoded = read_ahead([it.path for it in files])
        for item in self.items:
            if item.frame is not None:
                yield item.path, item.read()
                continue
            path, image = next(decoded)
            if isinstance(image, ImageReadError) or image.shape[:2] != item.size:
                raise UserError(f"{path}: changed or became unreadable during the search")
            yield path, image

    def sizes(self) -> list[tuple[Path, int, int]]:
        """(path, height, width) per image, in order (what the COCO metrics take)."""
        return [(it.path, it.size[0], it.size[1]) for it in self.items]

    def labelled(self) -> list[int]:
        """Indices of the images from the labelled folder."""
        return [i for i, it in enumerate(self.items) if it.labelled]


@dataclass
class Pool:
    search: PoolPart
    held_out: PoolPart
    sources: list[dict] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    calibration_excluded: int = 0
    search_available: int = 0  # search images before the subset for trials

    def describe(self) -> dict:
        """What the report says about the images: counts per part and per source."""
        return {
            "search_images": len(self.search),
            "search_images_available": self.search_available,
            "search_labelled": len(self.search.labelled()),
            "held_out_images": len(self.held_out),
            "held_out_labelled": len(self.held_out.labelled()),
            "hold_out_every": HOLD_OUT_EVERY,
            "calibration_images_excluded": self.calibration_excluded,
            "sources": self.sources,
            "skipped": [s.__dict__ for s in self.skipped],
        }


def split(items: list, every: int = HOLD_OUT_EVERY) -> tuple[list, list]:
    """(search, held out): every `every`-th item (the 4th, 8th, ...) is held out."""
    held = [x for i, x in enumerate(items) if i % every == every - 1]
    return [x for i, x in enumerate(items) if i % every != every - 1], held


def evenly(items: list, count: int) -> list:
    """At most `count` items spread evenly over the list, first and last included."""
    if len(items) <= count:
        return list(items)
    picks = np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))
    return [items[i] for i in picks]


def build_pool(
    images_dir: str | Path,
    pool: Iterable[str | Path] = (),
    *,
    exclude: Iterable[str | Path] = (),
    video_step: int = VIDEO_STEP,
    max_search: int = MAX_SEARCH_IMAGES,
    cancel: CancelToken | None = None,
) -> Pool:
    """The labelled folder `images_dir` plus the `pool` folders and videos (unlabelled), less
    the `exclude` files (the calibration images), split into search and held-out parts."""
    cancel = cancel or CancelToken()
    images_dir = Path(images_dir)
    skip = {_resolved(p) for p in exclude}
    search: list[PoolItem] = []
    held: list[PoolItem] = []
    result = Pool(PoolPart([]), PoolPart([]))
    seen: set[Path] = set()
    for spec in [images_dir, *(Path(p) for p in pool)]:
        labelled = spec == images_dir
        if _resolved(spec) in seen:
            continue  # the default pool is the images folder itself
        seen.add(_resolved(spec))
        if spec.is_dir():
            files = list_images(spec)
            kept = [f for f in files if _resolved(f) not in skip]
            result.calibration_excluded += len(files) - len(kept)
            kept = [f for f in kept if _resolved(f) not in seen]  # a folder inside another
            seen.update(_resolved(f) for f in kept)
            items = _read_files(kept, str(spec), labelled, result.skipped, cancel)
        elif spec.is_file() and is_video_path(spec):
            items = _video_frames(spec, video_step, cancel)
        else:
            raise UserError(f"{spec}: not a folder of images or a video file; give one")
        s, h = split(items)
        search += s
        held += h
        result.sources.append(
            {"source": str(spec), "kind": "video" if spec.is_file() else "folder"}
            | {"labelled": labelled, "images": len(items), "search": len(s), "held_out": len(h)}
        )
    if not search or not held:
        why = ""
        if result.calibration_excluded:
            why = (
                f" ({result.calibration_excluded} left out because the calibration used them: "
                "judged on them, INT8 would look closer to FP32 than it is)"
            )
        raise UserError(
            f"{images_dir}: {len(search) + len(held)} usable images{why}; the search needs at "
            f"least {HOLD_OUT_EVERY} (one in {HOLD_OUT_EVERY} is kept back to check the result): "
            "give images the calibration did not use (another folder; on the command line --pool "
            "adds folders or videos)"
        )
    result.search_available = len(search)
    result.search = PoolPart(_subset(search, max_search))
    result.held_out = PoolPart(evenly(held, MAX_HELD_OUT_IMAGES))
    return result


def _subset(items: list[PoolItem], count: int) -> list[PoolItem]:
    """At most `count` items for the search trials: every labelled one (they are few and the
    only ones with accuracy), the unlabelled spread evenly over the rest; order kept."""
    labelled = [it for it in items if it.labelled]
    if len(labelled) >= count:
        return evenly(labelled, count)
    keep = {
        id(it)
        for it in labelled + evenly([it for it in items if not it.labelled], count - len(labelled))
    }
    return [it for it in items if id(it) in keep]


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _read_files(
    files: list[Path], source: str, labelled: bool, skipped: list[Skipped], cancel: CancelToken
) -> list[PoolItem]:
    """The readable files with their sizes (decoded once here; unreadable ones are skipped)."""
    items = []
    for path, image in read_ahead(files):
        cancel.check()
        if isinstance(image, ImageReadError):
            skipped.append(Skipped(str(path), str(image)))
            continue
        items.append(PoolItem(path, source, labelled, (image.shape[0], image.shape[1])))
    return items


def _video_frames(video: Path, step: int, cancel: CancelToken) -> list[PoolItem]:
    """Every `step`-th frame (up to MAX_VIDEO_FRAMES), JPEG-encoded in memory."""
    cap = open_capture(str(video))
    items: list[PoolItem] = []
    index = 0
    try:
        while len(items) < MAX_VIDEO_FRAMES:
            cancel.check()
            ok = cap.grab()  # grab without decoding the frames that are not sampled
            if not ok:
                break
            if index % step == 0:
                ok, image = cap.retrieve()
                if ok and image is not None:
                    _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                    name = video.with_name(f"{video.name}#{index:06d}.jpg")
                    size = (image.shape[0], image.shape[1])
                    items.append(PoolItem(name, str(video), False, size, data.tobytes()))
            index += 1
    finally:
        cap.release()
    if not items:
        raise UserError(f"{video}: no frames could be decoded from this video")
    return items
