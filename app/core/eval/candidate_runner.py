"""Run one model on a sample of images under candidate preprocessings (the search's engine).

The resize modes are the frames package's own (`resize_frame`); each mode's resized sample is
cached, so a candidate costs only its arithmetic and the inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from app.core.frames.preprocess import resize_frame
from app.core.model.spec import ModelSpec, Preprocess
from app.core.ort_session import cpu_session

CROP_FRACTION = 0.875  # resize + crop: the usual 256 -> 224 short-side crop


class Pixels(Protocol):
    """What a candidate says about pixels (preprocess_search.Candidate)."""

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    color: str
    resize: str


def resized(bgr: np.ndarray, resize: str, th: int, tw: int) -> np.ndarray:
    """Uint8 BGR at [th, tw] by one resize mode: the frames package's own geometry and
    interpolation (resize + crop with the usual 256 -> 224 crop)."""
    pre = Preprocess(resize=resize, size=[th, tw], crop_fraction=CROP_FRACTION)
    out, _ = resize_frame(bgr, pre)
    return out


class CandidateRunner:
    """Runs the model on the sample under one candidate; resized images cached per mode."""

    def __init__(self, spec: ModelSpec, model_file: Path, images: list[np.ndarray]) -> None:
        self.spec, self.images = spec, images
        self.sess = cpu_session(model_file, log_severity=4)
        batch = spec.input_shape[0] if spec.input_shape else 1
        self.batch_all = not isinstance(batch, int) or batch == len(images)
        self.fixed_batch = batch if isinstance(batch, int) else 1
        self.dtype = np.uint8 if spec.preprocess.input_dtype == "uint8" else np.float32
        self._cache: dict[str, np.ndarray] = {}

    def _stack(self, resize: str) -> np.ndarray:
        if resize not in self._cache:
            th, tw = self.spec.preprocess.size
            self._cache[resize] = np.stack([resized(im, resize, th, tw) for im in self.images])
        return self._cache[resize]

    def run_each(
        self, cand: Pixels, start: int = 0, stop: int | None = None, *, mirrored: bool = False
    ) -> list[list]:
        """Every output of images [start:stop], batch index 0 (detectors: decoded one image at
        a time); `mirrored` feeds each input flipped left to right."""
        x, name = self._tensor(cand, mirrored)[start:stop], self.spec.input_name
        return [
            [
                np.asarray(o)
                for o in self.sess.run(None, {name: np.repeat(x[i : i + 1], self.fixed_batch, 0)})
            ]
            for i in range(len(x))
        ]

    def run(self, cand: Pixels) -> np.ndarray:
        x = self._tensor(cand)
        name = self.spec.input_name
        if self.batch_all:
            return np.asarray(self.sess.run(None, {name: x})[0])
        outs = [
            self.sess.run(None, {name: np.repeat(x[i : i + 1], self.fixed_batch, 0)})[0][:1]
            for i in range(len(x))
        ]
        return np.concatenate([np.asarray(o) for o in outs])

    def _tensor(self, cand: Pixels, mirrored: bool = False) -> np.ndarray:
        x = self._stack(cand.resize)
        if mirrored:
            x = x[:, :, ::-1]  # NHWC: width
        if cand.color == "RGB":
            x = x[..., ::-1]
        x = (x.astype(np.float32) * np.float32(cand.scale) - np.float32(cand.mean)) / np.float32(
            cand.std
        )
        if self.spec.preprocess.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self.dtype)
