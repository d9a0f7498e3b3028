"""Box labels on a crowded real photo (YOLOX-Nano's own detections on a COCO image with 16
people): none drawn over another, each still beside or inside its own box."""

from __future__ import annotations

import cv2
import pytest

from app.backends.factory import make_runner
from app.core.frames.drawing import draw_detections
from app.core.frames.pipeline import FramePipeline
from app.core.model.inspection import inspect_model
from tests.assets import COCO_DEV64, YOLOX, needs_assets

pytestmark = needs_assets
CROWDED = COCO_DEV64 / "images" / "000000004134.jpg"  # 26 labelled objects, a banquet


def _overlapping_pairs(rects: list[tuple[int, int, int, int]]) -> int:
    return sum(
        1
        for i, a in enumerate(rects)
        for b in rects[:i]
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    )


@pytest.fixture(scope="module")
def crowded():
    spec = inspect_model(YOLOX)
    image = cv2.imread(str(CROWDED))
    with make_runner("ort-cpu", spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        raw, geo, _ = pipe.infer_raw(image)
        dets = pipe.decode(raw, geo).detections
    return spec, image, dets


def test_labels_do_not_overlap_on_a_crowded_photo(crowded):
    """Before, 10 pairs of labels were drawn over each other on this photo."""
    spec, image, dets = crowded
    assert len(dets) >= 12
    rects: list[tuple[int, int, int, int]] = []
    out = draw_detections(image.copy(), dets, spec, label_rects=rects)
    assert out.shape == image.shape and len(rects) == len(dets)
    assert _overlapping_pairs(rects) == 0
    height = image.shape[0]
    for (x0, y0, _, y1), box in zip(rects, dets.boxes):
        bx0, by0, _, by1 = (int(round(v)) for v in box)
        assert x0 == bx0 and y0 >= 0 and y1 <= height  # starts at the box's left edge
        assert by0 - (y1 - y0) <= y0 <= by1 + 1 or y1 == height  # above, inside or below it


def test_an_uncrowded_label_stays_above_its_box(crowded):
    spec, image, dets = crowded
    best = type(dets)(dets.boxes[:1], dets.scores[:1], dets.class_ids[:1])
    rects: list[tuple[int, int, int, int]] = []
    draw_detections(image.copy(), best, spec, label_rects=rects)
    (_, y0, _, y1), top = rects[0], int(round(float(dets.boxes[0][1])))
    assert y1 == top or y0 == 0  # its bottom on the box's top edge, as it always was
