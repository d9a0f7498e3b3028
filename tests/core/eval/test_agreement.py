"""Detection agreement used by the compare view (pure numpy)."""

from __future__ import annotations

import numpy as np

from app.core.eval.agreement import compare_detections
from app.core.frames.postprocess import Detections


def dets(boxes, classes):
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.linspace(0.9, 0.5, len(b)).astype(np.float32), np.asarray(classes))


def test_missing_and_class_change_are_highlighted():
    a = dets([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], [1, 2, 3])
    b = dets([[0, 0, 10, 11], [20, 20, 30, 30]], [1, 5])
    agree = compare_detections(a, b)
    assert agree.matched == 1
    assert agree.highlight_a().tolist() == [False, True, True]
    assert agree.class_diff_a.tolist() == [False, True, False]
    assert agree.missing_a.tolist() == [False, False, True]
    assert agree.highlight_b().tolist() == [False, True]
    assert abs(agree.score - 2 / 5) < 1e-9


def test_empty_frames_agree():
    assert compare_detections(dets([], []), dets([], [])).score == 1.0
