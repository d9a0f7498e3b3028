"""The per-frame record and running summary shared by `compare` and the Compare view."""

from __future__ import annotations

import numpy as np

from app.core.eval.comparison import Comparison, diff_frame
from app.core.frames.pipeline import FrameResult
from app.core.frames.postprocess import Detections, TopK
from app.core.frames.side_by_side import side_by_side


def result(boxes, classes, scores) -> FrameResult:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    s = np.asarray(scores, np.float32)
    return FrameResult(detections=Detections(b, s, np.asarray(classes, np.int64)))


def test_a_frame_record_names_each_kind_of_disagreement_with_iou_and_score():
    a = result([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], [1, 2, 3], [0.9, 0.8, 0.7])
    b = result([[0, 0, 10, 12], [20, 20, 30, 30], [80, 80, 90, 90]], [1, 5, 4], [0.6, 0.8, 0.4])
    diff = diff_frame("v.mp4", 7, a, b)
    assert (diff.matched, diff.missed, diff.extra, diff.other_class) == (1, 1, 1, 1)
    assert diff.disagrees and abs(diff.score - 2 / 6) < 1e-9
    record = diff.to_json()
    assert record["mean_iou"] == round(100 / 120, 4)  # 10x10 inside 10x12
    assert record["max_score_diff"] == 0.3
    kinds = sorted(d["kind"] for d in record["disagreements"])
    assert kinds == ["extra", "missed", "other_class", "other_class_b"]
    assert diff.highlight_a.tolist() == [False, True, True]


def test_the_summary_adds_frames_up_and_a_classifier_agrees_on_its_top_class():
    comp = Comparison()
    same = result([[0, 0, 10, 10]], [1], [0.9])
    comp.add("a.jpg", 0, same, same)
    comp.add("b.jpg", 0, same, result([], [], []))
    s = comp.summary()
    assert (s["frames"], s["disagreeing_frames"], s["matched"], s["missed"]) == (2, 1, 1, 1)
    assert s["agreement"] == round(2 / 3, 4) and s["mean_iou"] == 1.0
    top = Comparison()
    cat, dog = (FrameResult(top=TopK(np.array([c]), np.array([0.8]))) for c in (3, 5))
    assert top.add("x.jpg", 0, cat, cat).score == 1.0
    assert top.add("y.jpg", 0, cat, dog).other_class == 1
    assert top.agreement == 0.5  # one frame of two agrees


def test_side_by_side_keeps_both_frames_and_pads_the_shorter():
    left = np.full((40, 60, 3), 200, np.uint8)
    right = np.full((30, 50, 3), 100, np.uint8)
    image = side_by_side(left, right, ("A: fp32", "B: int8 with a long name"), "missed 1")
    assert image.shape[1] == 60 + 50 + 8
    assert image.shape[0] > 40  # title and caption bands
    assert (image == 200).all(axis=2).sum() >= 40 * 60 - 200  # A's pixels are all there
