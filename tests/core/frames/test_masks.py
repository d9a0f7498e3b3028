"""Instance masks land on the source pixels they cover: through a centred letterbox, cut to
their boxes, from Ultralytics' prototypes and from MMDeploy's per-box maps, and are drawn there
only; the -seg layouts derived from the real YOLOX-Nano give one mask per box in the frame
pipeline, and evaluation (which scores boxes) makes none."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.backends.factory import make_runner
from app.core.frames.drawing import draw_detections
from app.core.frames.imageio import read_image
from app.core.frames.masks import pasted_masks, prototype_masks
from app.core.frames.pipeline import FramePipeline
from app.core.frames.postprocess import Detections
from app.core.frames.preprocess import Geometry
from app.core.model.inspection import inspect_model
from tests.assets import COCO_DEV64, YOLOX, needs_assets
from tests.core.model.derived_layouts import build_layout

# a 640 x 480 frame letterboxed (centred) into 320 x 320: half size, 40 rows of padding on top
GEO = Geometry(0.5, 0.5, 0.0, -40.0, 640, 480, 320, 320)


def disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Pixels whose centres lie within r of (cx, cy), continuous coordinates."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_prototype_mask_maps_through_the_letterbox_onto_the_source_disc():
    # prototypes at a quarter of the input (80 x 80); channel 3 is a disc of radius 15 cells
    # around continuous proto point (40, 40), i.e. model point (160, 160), radius 60 model px
    protos = np.full((32, 80, 80), -3.0, np.float32)
    protos[3] = np.where(disc(80, 80, 40, 40, 15), 6.0, -6.0)
    coefs = np.zeros((2, 32), np.float32)
    coefs[0, 3] = 1.0  # the disc
    coefs[1, 0] = 1.0  # all negative: an empty mask
    boxes = np.array([[80, 80, 240, 240], [0, 0, 100, 100]], np.float32)  # model pixels
    masks = prototype_masks(coefs, protos, boxes, GEO)
    assert len(masks) == 2
    # source: (model + off) / scale -> centre (320, 240), radius 120, box (160, 80)-(480, 400)
    got = masks.full(0, 480, 640)
    want = disc(480, 640, 320, 240, 120)
    assert iou(got, want) > 0.97
    assert masks.areas()[1] == 0
    # nothing outside the box's rectangle; the rectangle is the box's own (clipped to the frame)
    assert masks.rects[0].tolist() == [160, 80, 480, 400]


def test_a_mask_is_cut_to_its_box():
    protos = np.full((1, 80, 80), 5.0, np.float32)  # positive everywhere
    boxes = np.array([[100.5, 120.25, 180.0, 200.0]], np.float32)
    masks = prototype_masks(np.ones((1, 1), np.float32), protos, boxes, GEO)
    x1, y1, x2, y2 = GEO.to_source(boxes)[0]
    got = masks.full(0, 480, 640)
    ys, xs = np.mgrid[0:480, 0:640] + 0.5
    want = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
    assert np.array_equal(got, want)


def test_mmdeploy_maps_are_pasted_into_their_boxes():
    left = np.zeros((1, 28, 28), np.float32)
    left[0, :, :14] = 0.9  # the left half of the box
    boxes = np.array([[100, 100, 200, 180]], np.float32)
    masks = pasted_masks(left, boxes, GEO)
    x1, y1, x2, y2 = GEO.to_source(boxes)[0]  # (200, 280) - (400, 440)
    got = masks.full(0, 480, 640)
    ys, xs = np.mgrid[0:480, 0:640] + 0.5
    want = (xs >= x1) & (xs <= (x1 + x2) / 2) & (ys >= y1) & (ys <= y2)
    assert iou(got, want) > 0.98
    # a map the size of the whole input is read over the input, not over the box
    whole = np.zeros((1, 320, 320), np.float32)
    whole[0, 160:, :] = 1.0  # the lower half of the input
    masks = pasted_masks(whole, np.array([[0, 0, 320, 320]], np.float32), GEO)
    got = masks.full(0, 480, 640)
    assert got[:, :].sum() and not got[:240].any() and got[242:].all()


@needs_assets
def test_masks_are_drawn_inside_themselves_only():
    image = np.full((480, 640, 3), 200, np.uint8)
    protos = np.full((1, 80, 80), 5.0, np.float32)
    boxes = np.array([[100, 100, 180, 200]], np.float32)
    masks = prototype_masks(np.ones((1, 1), np.float32), protos, boxes, GEO)
    dets = Detections(GEO.to_source(boxes), np.array([0.9], np.float32), np.array([0]), masks)
    spec = inspect_model(YOLOX)
    drawn = draw_detections(image.copy(), dets, spec)
    changed = (drawn != image).any(axis=2)
    inside = masks.full(0, 480, 640)
    assert changed[inside].mean() > 0.95  # tinted (the label and box lines drawn over some)
    x0, y0, x1, y1 = masks.rects[0]
    outside = np.ones_like(changed)
    outside[max(0, y0 - 40) : y1 + 4, max(0, x0 - 4) : x1 + 200] = False  # box lines, label
    assert not changed[outside].any()
    # a filtered copy keeps each detection's own mask
    assert len(dets.filtered(0.95)) == 0 and len(dets.filtered(0.95).masks) == 0


@needs_assets
@pytest.mark.parametrize("kind", ["yolov8_seg", "mmdeploy_seg"])
def test_seg_layouts_give_a_mask_per_box_in_the_pipeline_and_none_to_evaluation(kind, tmp_path):
    path = build_layout(kind, tmp_path / f"{kind}.onnx")
    spec = inspect_model(path)
    roles = spec.postprocess.outputs
    assert ("prototypes" in roles) if kind == "yolov8_seg" else ("masks" in roles), spec.notes
    image = read_image(sorted((COCO_DEV64 / "images").glob("*.jpg"))[0])
    with make_runner("ort-cpu", path) as runner:
        pipe = FramePipeline(spec, runner)
        dets = pipe.process(image).detections
        assert dets is not None and len(dets) >= 2 and dets.masks is not None
        assert len(dets.masks) == len(dets)
        h, w = image.shape[:2]
        for i in range(len(dets)):
            x1, y1, x2, y2 = dets.boxes[i]
            rx0, ry0, rx1, ry1 = dets.masks.rects[i]
            assert rx0 <= x1 + 1 and ry0 <= y1 + 1 and rx1 >= x2 - 1 and ry1 >= y2 - 1
            assert dets.masks.masks[i].shape == (ry1 - ry0, rx1 - rx0)
            assert 0 <= rx0 <= rx1 <= w and 0 <= ry0 <= ry1 <= h
        assert dets.masks.areas().sum() > 0  # these stand-in maps cover their boxes
        pipe.masks = False  # as evaluate sets it
        plain = pipe.process(image).detections
        assert plain.masks is None and np.array_equal(plain.boxes, dets.boxes)
    # a spec saved before masks were read (no prototypes role) still finds its prototypes
    if kind == "yolov8_seg":
        saved = {"detections": "output0"}
        old = replace(spec, postprocess=replace(spec.postprocess, outputs=saved))
        with make_runner("ort-cpu", path) as runner:
            again = FramePipeline(old, runner).process(image).detections
        assert again.masks is not None and np.array_equal(again.masks.areas(), dets.masks.areas())


@needs_assets
def test_compare_reports_how_alike_matched_boxes_masks_are_and_run_writes_outlines():
    from app.core.eval.comparison import Comparison
    from app.core.frames.pipeline import FrameResult

    protos = np.zeros((3, 80, 80), np.float32)
    protos[0] = np.where(disc(80, 80, 40, 40, 15), 6.0, -6.0)
    protos[1] = np.where(disc(80, 80, 42, 40, 15), 6.0, -6.0)  # the same disc, 2 cells right
    protos[2] = np.where(disc(80, 80, 50, 40, 15), 6.0, -6.0)  # 10 cells right
    boxes = np.array([[80, 80, 240, 240]], np.float32)

    def result(channel: int) -> FrameResult:
        coefs = np.eye(3, dtype=np.float32)[[channel]]
        masks = prototype_masks(coefs, protos, boxes, GEO)
        src = GEO.to_source(boxes)
        return FrameResult(Detections(src, np.array([0.8], np.float32), np.array([0]), masks))

    comparison = Comparison()
    same = comparison.add("v", 0, result(0), result(0))
    near = comparison.add("v", 1, result(0), result(1))
    far = comparison.add("v", 2, result(0), result(2))
    assert same.mask_ious == [1.0] and not same.disagrees
    # discs of radius 15 cells 2 apart: IoU about 0.84; 10 apart: about 0.45
    assert 0.78 < near.mask_ious[0] < 0.9 and not near.disagrees
    assert 0.35 < far.mask_ious[0] < 0.55
    # the boxes match; the masks do not: a disagreement, drawn thick on both sides
    assert far.disagrees and far.mask_differs == 1 and far.matched == 1
    assert far.highlight_a.tolist() == [True] and far.highlight_b.tolist() == [True]
    assert far.items[0]["kind"] == "mask_differs"
    summary = comparison.summary()
    assert summary["mask_pairs"] == 3 and summary["mask_iou_below_0_9"] == 2
    assert summary["mask_differs"] == 1 and summary["disagreeing_frames"] == 1
    assert summary["min_mask_iou"] == pytest.approx(far.mask_ious[0], abs=1e-4)
    # `run`'s JSON: each detection's mask area and outline, in source pixels
    item = result(0).to_json(inspect_model(YOLOX))["detections"][0]
    outline = np.array(item["mask"]["polygon"])
    assert item["mask"]["area"] == pytest.approx(np.pi * 120**2, rel=0.03)
    assert np.allclose(outline.mean(axis=0), (320, 240), atol=3)
    assert np.allclose(np.abs(outline - (320, 240)).max(axis=0), 120, atol=2)


@needs_assets
def test_evaluate_scores_how_alike_each_variant_draws_the_masks(tmp_path):
    """`evaluate` on a segmentation model reports mask IoU with FP32 over the boxes both find;
    a variant whose prototypes are negated draws every mask inside out and scores near 0."""
    import onnx
    from onnx import helper

    from app.core.eval.evaluate import evaluate
    from app.core.model.workspace import Workspace

    path = build_layout("yolov8_seg", tmp_path / "seg.onnx")
    ws = Workspace.for_model(inspect_model(path), tmp_path / "ws")
    model = onnx.load(str(path))
    out = next(o for o in model.graph.output if o.name == "output1")
    for node in model.graph.node:  # the prototypes, negated on their way out
        node.output[:] = ["protos_raw" if o == out.name else o for o in node.output]
    model.graph.node.append(helper.make_node("Neg", ["protos_raw"], [out.name]))
    onnx.save(model, str(ws.variant_path("inside-out")))
    ws.record_variant("inside-out", {"precision": "fp32", "target": "any"})
    photos = tmp_path / "photos"
    photos.mkdir()
    for f in sorted((COCO_DEV64 / "images").glob("*.jpg"))[:6]:
        (photos / f.name).write_bytes(f.read_bytes())
    report = evaluate(ws, photos, variants=["inside-out", "fp32"], runner_factory=make_runner)
    # no labels beside the photos: scored against FP32, and said why
    assert not report["labelled"] and report["labels_note"].startswith("no box labels found")
    m = {v["name"]: v["metrics"] for v in report["variants"]}
    assert m["fp32"]["mask_iou_fp32"] == 1.0 and m["fp32"]["mask_differs_fp32"] == 0.0
    assert m["inside-out"]["matched_fp32"] == 100.0  # the same boxes
    assert m["inside-out"]["mask_iou_fp32"] < 0.2 and m["inside-out"]["mask_differs_fp32"] > 90
    # a detector without masks gets no mask columns
    plain = Workspace.for_model(inspect_model(YOLOX), tmp_path / "plain")
    report = evaluate(plain, photos, variants=["fp32"], runner_factory=make_runner)
    assert "mask_iou_fp32" not in report["variants"][0]["metrics"]
