"""Preprocessing geometry and decoding, against plain references, on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from app.backends.onnxrt import OrtRunner
from app.benchmarks.tutorial_pipeline import tutorial_postprocess, tutorial_preprocess
from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.frames.postprocess import nms, topk
from app.core.frames.preprocess import Preprocessor, resize_frame, target_shape
from app.core.model.inspection import inspect_model
from app.core.model.spec import Preprocess
from tests.conftest import IMAGES, YOLOX, YOLOX_TUTORIAL, needs_assets


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_letterbox_matches_tutorial_layout():
    yy, xx = np.mgrid[0:375, 0:500]
    img = np.stack([xx * 255 // 500, yy * 255 // 375, (xx + yy) * 255 // 875], -1).astype(np.uint8)
    tensor, geo = Preprocessor(Preprocess())(img)
    ref, ratio = tutorial_preprocess(img)
    assert geo.scale_x == pytest.approx(ratio)
    assert tensor.shape == ref.shape == (1, 3, 416, 416)
    # the pad region is exactly 114 and the image sits top-left
    nh = int(375 * ratio)
    assert np.all(tensor[0, :, nh + 1 :, :] == 114)
    # interpolation differs slightly between OpenCV and PIL; content must agree closely
    assert np.abs(tensor[0, :, : nh - 1] - ref[0, :, : nh - 1]).mean() < 1.5


def test_boxes_map_back_to_source_pixels_for_every_resize_mode():
    img = np.zeros((300, 600, 3), np.uint8)
    for mode in ("letterbox", "stretch", "resize_crop"):
        pre = Preprocess(resize=mode, size=[200, 200])
        _, geo = resize_frame(img, pre)
        # the model-space point at the image centre maps to the source centre
        centre = np.array([[geo.in_w / 2, geo.in_h / 2, geo.in_w / 2, geo.in_h / 2]], np.float32)
        if mode == "letterbox":
            centre = np.array([[300 * geo.scale_x] * 2 + [300 * geo.scale_x] * 2], np.float32)
            centre[0, [1, 3]] = 150 * geo.scale_y
        src = geo.to_source(centre)
        assert src[0, 0] == pytest.approx(300, abs=1) and src[0, 1] == pytest.approx(150, abs=1), (
            mode
        )


def test_boxes_reaching_past_the_frame_are_clipped_to_it():
    """A box the model puts partly outside the image (letterbox padding included) ends at the
    frame's edges (the clip used to write into a copy and change nothing)."""
    img = np.zeros((300, 600, 3), np.uint8)
    _, geo = resize_frame(img, Preprocess(resize="letterbox", size=[200, 200]))
    boxes = np.array([[-20.0, -10.0, 250.0, 199.0], [10.0, 10.0, 50.0, 40.0]], np.float32)
    src = geo.to_source(boxes)
    assert src[0].tolist() == [0.0, 0.0, 600.0, 300.0]
    assert src[1] == pytest.approx(boxes[1] / geo.scale_x)


def test_short_side_crop_is_the_tutorial_shape():
    pre = Preprocess(resize="short_side_crop", short_side=384, stride=32)
    assert target_shape(pre, 375, 500) == (384, 512)
    assert target_shape(pre, 480, 640) == (384, 512)
    assert target_shape(pre, 1080, 1920) == (384, 672)


def test_nhwc_and_rgb_normalisation():
    img = np.zeros((10, 10, 3), np.uint8)
    img[..., 0] = 10  # blue
    img[..., 2] = 200  # red
    pre = Preprocess(
        resize="stretch",
        size=[8, 8],
        color="RGB",
        scale=1 / 255,
        mean=[0.5] * 3,
        std=[0.5] * 3,
        layout="NHWC",
    )
    tensor, _ = Preprocessor(pre)(img)
    assert tensor.shape == (1, 8, 8, 3)
    assert tensor[0, 0, 0, 0] == pytest.approx((200 / 255 - 0.5) / 0.5, abs=1e-5)
    assert tensor[0, 0, 0, 2] == pytest.approx((10 / 255 - 0.5) / 0.5, abs=1e-5)


def test_nms_is_class_aware_and_topk_sorted():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    keep = nms(boxes, scores, np.array([0, 0, 1]), 0.5, 100)
    assert keep.tolist() == [0, 2]
    top = topk(np.array([0.1, 0.5, 0.05, 0.35]), 2)
    assert top.class_ids.tolist() == [1, 3]


@needs_assets
@pytest.mark.parametrize(
    "photo", ["dog_0.jpg", "dog_3.jpg", "object_5.jpg", "city_0.jpg", "peds_0.jpg"]
)
def test_yolox_detections_match_the_plain_reference_run(photo):
    spec = inspect_model(YOLOX)
    img = read_image(IMAGES / "photos-misc103" / photo)
    with OrtRunner(spec.path) as runner:
        ours = FramePipeline(spec, runner).process(img.copy()).detections
        ref_in, ratio = tutorial_preprocess(img)
        ref = tutorial_postprocess(runner.infer(ref_in)[0], ratio)
    strong = [d for d in ref if d[1] >= 0.5]
    assert strong, "reference found nothing confident; pick another photo"
    for box, score, cid in strong:
        matches = [_iou(box, ours.boxes[i]) for i in range(len(ours)) if ours.class_ids[i] == cid]
        assert matches and max(matches) >= 0.5, (photo, spec.label(cid), score)


@needs_assets
def test_yolox_finds_the_expected_objects():
    spec = inspect_model(YOLOX)
    expect = {
        "dog_0.jpg": {"dog", "person"},
        "dog_3.jpg": {"dog", "bicycle"},
        "object_2.jpg": {"train"},
    }
    with OrtRunner(spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        for photo, labels in expect.items():
            dets = pipe.process(read_image(IMAGES / "photos-misc103" / photo)).detections
            found = {spec.label(int(c)) for c in dets.class_ids[dets.scores >= 0.5]}
            assert labels <= found, (photo, found)


@needs_assets
def test_tutorial_export_agrees_with_official_export():
    img = read_image(IMAGES / "photos-misc103" / "dog_0.jpg")
    results = {}
    for path in (YOLOX, YOLOX_TUTORIAL):
        spec = inspect_model(path)
        with OrtRunner(spec.path) as runner:
            dets = FramePipeline(spec, runner).process(img.copy()).detections
        results[path.name] = {spec.label(int(c)) for c in dets.class_ids[dets.scores >= 0.5]}
    assert results[YOLOX.name] == results[YOLOX_TUTORIAL.name] == {"dog", "person"}
