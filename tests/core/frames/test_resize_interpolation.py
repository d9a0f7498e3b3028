"""Shrinking averages pixels instead of skipping them (issue 18: `stretch` used bilinear for
any downscale, which aliases: fine detail turns into false stripes)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.core.frames.preprocess import resize_frame
from app.core.model.spec import Preprocess


def _stripes(h: int, w: int) -> np.ndarray:
    """Vertical stripes two pixels wide: detail far finer than a 10x smaller image can hold."""
    row = np.where((np.arange(w) // 2) % 2 == 0, 255, 0).astype(np.uint8)
    return np.repeat(np.repeat(row[None, :, None], h, axis=0), 3, axis=2)


@pytest.mark.parametrize("mode", ["stretch", "resize_crop", "short_side_crop"])
def test_large_downscale_averages_fine_detail_to_grey(mode: str) -> None:
    frame = _stripes(960, 960)
    out, _ = resize_frame(frame, Preprocess(resize=mode, size=[96, 96]))
    assert out.shape == (96, 96, 3)
    # averaged: every pixel close to the stripes' mean grey; bilinear sampling gives 0/255 stripes
    assert abs(float(out.mean()) - 127.5) < 20
    assert float(out.std()) < 30, f"{mode}: aliased (std {out.std():.0f})"
    aliased = cv2.resize(frame, (96, 96), interpolation=cv2.INTER_LINEAR)
    assert float(aliased.std()) > 100  # what the old code produced for `stretch`


def test_letterbox_keeps_bilinear_above_half_size_and_averages_below() -> None:
    """Detectors are trained on bilinear letterboxes: 640 -> 416 stays bit-identical to it."""
    frame = _stripes(480, 640)
    pre = Preprocess(resize="letterbox", size=[416, 416])
    out, geo = resize_frame(frame, pre)
    nh, nw = int(480 * geo.scale_x), int(640 * geo.scale_x)
    expected = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out[:nh, :nw], expected)
    big = _stripes(2160, 3840)  # a 4K camera frame: 0.11x
    out, geo = resize_frame(big, pre)
    nh, nw = int(2160 * geo.scale_x), int(3840 * geo.scale_x)
    assert float(out[:nh, :nw].std()) < 30
