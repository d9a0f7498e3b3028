"""Names of scatter points at nearly the same spot go one above, one below."""

from __future__ import annotations

from app.gui.plot_labels import ABOVE, BELOW, label_anchors


def test_close_points_take_turns_above_and_below_and_far_ones_stay_above():
    # fp32 and fp32-prep a hair apart, fp16 and int8 far from them and from each other
    xs, ys = [20.0, 20.3, 30.0, 12.0], [37.12, 37.12, 36.8, 36.3]
    assert label_anchors(xs, ys) == [ABOVE, BELOW, ABOVE, ABOVE]
    # a third at the same spot: above again is no better than below; it stays above
    assert label_anchors([1.0, 1.0, 1.0, 9.0], [5.0, 5.0, 5.0, 1.0])[:2] == [ABOVE, BELOW]
    assert label_anchors([], []) == []
