"""Confidence intervals of evaluation metrics by bootstrap over images: how much of a score, and
of a variant's difference to FP32, is the luck of which photos were in the folder.

Each resample draws as many images as the folder has, with replacement (seeded, so a report can
be reproduced), and rescores every variant on that same draw; the interval is the 2.5th to
97.5th percentile of the resampled scores. Differences are paired: a variant minus FP32 on the
same draw, which is far narrower than the two intervals suggest, because the images that are
hard for one are hard for the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

SEED = 0
LEVEL = 95.0
RESAMPLES = 1000  # per-image scores (top-1): a resample is a weighted mean, microseconds
# A COCO mAP resample re-accumulates every class's precision/recall curve (about 4 ms for 64
# images on a 2-core VM, times two ground truths and every variant: 5 s of a 23 s `evaluate`
# of three YOLOX-Nano variants); 200 resamples keep that affordable and still place the ends
# of a 95% interval within a few tenths of a point.
MAP_RESAMPLES = 200


class ImageScores(Protocol):
    """Metrics that can be recomputed with image i counted weights[i] times."""

    n_images: int

    def values(self, weights: np.ndarray | None = None) -> dict[str, float]: ...


@dataclass
class MeanOfImages:
    """Percentages that are a mean of per-image results (1.0 hit, 0.0 miss, NaN not scored,
    e.g. an image without a label)."""

    per_image: dict[str, np.ndarray]

    @property
    def n_images(self) -> int:
        return len(next(iter(self.per_image.values())))

    def values(self, weights: np.ndarray | None = None) -> dict[str, float]:
        out = {}
        for name, hits in self.per_image.items():
            scored = ~np.isnan(hits)
            w = np.ones(len(hits)) if weights is None else np.asarray(weights, float)
            total = float(w[scored].sum())
            out[name] = float(100 * (w[scored] @ hits[scored]) / total) if total else float("nan")
        return out


def _interval(samples: np.ndarray) -> list[float] | None:
    samples = samples[~np.isnan(samples)]
    if samples.size < 2:
        return None
    tail = (100 - LEVEL) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return [round(float(lo), 2) + 0.0, round(float(hi), 2) + 0.0]  # + 0.0: no "-0" printed


def intervals(
    scores: Mapping[str, Sequence[ImageScores]],
    *,
    reference: str = "fp32",
    resamples: int | None = None,
    seed: int = SEED,
) -> dict[str, dict[str, Any]]:
    """{variant: {"metrics_ci": {metric: [lo, hi]}, "diff_ci": {metric: [lo, hi]}}} from every
    variant's per-image scores (all over the same images); diff_ci is the variant minus
    `reference` on the same resamples, absent for the reference itself."""
    if not scores:
        return {}
    every = [s for group in scores.values() for s in group]
    if not every or every[0].n_images < 2:
        return {}  # nothing scored per image, or nothing to resample
    n = every[0].n_images
    resamples = resamples or default_resamples(scores)
    rng = np.random.default_rng(seed)
    drawn: dict[str, dict[str, list[float]]] = {v: {} for v in scores}
    for _ in range(resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        for variant, group in scores.items():
            for s in group:
                for name, value in s.values(weights).items():
                    drawn[variant].setdefault(name, []).append(value)
    out: dict[str, dict[str, Any]] = {}
    ref = {k: np.asarray(v) for k, v in drawn.get(reference, {}).items()}
    for variant, metrics in drawn.items():
        arrays = {k: np.asarray(v) for k, v in metrics.items()}
        entry: dict[str, Any] = {
            "metrics_ci": {k: ci for k, a in arrays.items() if (ci := _interval(a)) is not None}
        }
        if variant != reference and ref:
            entry["diff_ci"] = {
                k: ci
                for k, a in arrays.items()
                if k in ref and (ci := _interval(a - ref[k])) is not None
            }
        out[variant] = entry
    return out


def default_resamples(scores: Mapping[str, Sequence[ImageScores]]) -> int:
    """RESAMPLES for per-image means, MAP_RESAMPLES when any metric is a COCO mAP."""
    every = [s for group in scores.values() for s in group]
    return RESAMPLES if all(isinstance(s, MeanOfImages) for s in every) else MAP_RESAMPLES


def settings(resamples: int) -> dict[str, Any]:
    """What a report records about how its intervals were made."""
    return {
        "method": "bootstrap over images, paired with fp32",
        "resamples": resamples,
        "seed": SEED,
        "level": LEVEL,
    }
