"""Ultralytics' centred letterbox maps boxes back exactly; uint8 inputs get the frame unscaled."""

from __future__ import annotations

import numpy as np

from app.core.frames.preprocess import Preprocessor, resize_frame
from app.core.model.spec import Preprocess


def _frame(h: int = 480, w: int = 640) -> np.ndarray:
    frame = np.zeros((h, w, 3), np.uint8)
    frame[100:200, 300:420] = (10, 200, 30)  # a green block at x 300..420, y 100..200
    return frame


def test_centred_letterbox_pads_both_sides_and_maps_boxes_back():
    pre = Preprocess(resize="letterbox", size=[416, 416], pad_center=True)
    img, geo = resize_frame(_frame(), pre)
    # 640x480 -> 416x312: 52 rows of pad 114 above and below, none at the sides
    assert (img[:52] == 114).all() and (img[-52:] == 114).all() and not (img[52:364] == 114).all()
    assert (geo.off_x, geo.off_y) == (0.0, -52.0)
    ys, xs = np.nonzero(img[:, :, 1] > 150)
    model_box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    np.testing.assert_allclose(geo.to_source(model_box), [[300, 100, 420, 200]], atol=2)


def test_top_left_letterbox_is_unchanged_by_default():
    img, geo = resize_frame(_frame(), Preprocess(resize="letterbox", size=[416, 416]))
    assert (img[312:] == 114).all() and (geo.off_x, geo.off_y) == (0.0, 0.0)


def test_uint8_input_gets_the_resized_frame_unscaled_in_its_layout_and_colour_order():
    frame = _frame()
    for layout in ("NHWC", "NCHW"):
        pre = Preprocess(resize="stretch", size=[300, 300], color="RGB", input_dtype="uint8")
        pre.layout = layout
        proc = Preprocessor(pre)
        one, _ = proc(frame)
        many, _ = proc.batch([frame, frame])
        assert one.dtype == np.uint8 and many.dtype == np.uint8 and many.shape[0] == 2
        hwc = one[0] if layout == "NHWC" else one[0].transpose(1, 2, 0)
        assert tuple(hwc[90, 170]) == (30, 200, 10)  # the block, RGB order, raw values
        np.testing.assert_array_equal(many[1], one[0])


def test_uint8_input_refuses_a_scale():
    import pytest

    from app.core.errors import UserError

    with pytest.raises(UserError, match="uint8"):
        Preprocess(input_dtype="uint8", scale=1 / 255).validate()
