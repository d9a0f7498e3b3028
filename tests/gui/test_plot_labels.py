"""Names of scatter points at nearly the same spot go one above, one below."""

from __future__ import annotations

from app.gui.plot_labels import ABOVE, BELOW, label_anchors, label_reach


def test_close_points_take_turns_above_and_below_and_far_ones_stay_above():
    # fp32 and fp32-prep a hair apart, fp16 and int8 far from them and from each other
    xs, ys = [20.0, 20.3, 30.0, 12.0], [37.12, 37.12, 36.8, 36.3]
    assert label_anchors(xs, ys) == [ABOVE, BELOW, ABOVE, ABOVE]
    # a third at the same spot: above again is no better than below; it stays above
    assert label_anchors([1.0, 1.0, 1.0, 9.0], [5.0, 5.0, 5.0, 1.0])[:2] == [ABOVE, BELOW]
    assert label_anchors([], []) == []


def test_a_long_name_pushes_the_next_point_of_the_same_accuracy_below():
    """fp32-prep and fp32 on OpenVINO, a tenth of the latency span apart at the same mAP: the
    first label, with its backend, reaches past the second point, so the second goes below;
    with short labels (reach 5%) both stay above."""
    xs, ys = [5.9, 6.6, 12.0, 3.0], [39.99, 39.99, 39.3, 39.86]
    assert label_anchors(xs, ys, [0.25] * 4)[:2] == [ABOVE, BELOW]
    assert label_anchors(xs, ys, [0.05] * 4)[:2] == [ABOVE, ABOVE]


def test_label_reach_grows_with_the_name_and_shrinks_with_the_plot(qtbot):
    import pyqtgraph as pg

    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    plot.resize(1000, 400)
    plot.show()
    qtbot.waitExposed(plot)
    short, long = label_reach(["fp32", "fp32-prep · openvino-cpu"], plot)
    assert 0 < short < long < 1
    plot.resize(2000, 400)
    qtbot.wait(50)
    assert label_reach(["fp32-prep · openvino-cpu"], plot)[0] < long
