"""Every detector layout loads with no manual fix and finds what the raw YOLOX weights find.

The layouts are built from the real YOLOX-Nano COCO weights (`derived_layouts`), so decoder,
preprocessing and labels are right only if the detections match a plain run of the raw model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.backends.factory import make_runner, runner_for_pipeline
from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.frames.postprocess import Detections
from app.core.model.inspection import inspect_model
from app.core.model.spec import ModelSpec
from tests.assets import COCO_DEV64, MODELS, YOLOX, needs_assets
from tests.core.model.derived_layouts import LAYOUTS, NMS_IOU, build_layout

pytestmark = needs_assets

PHOTOS = sorted((COCO_DEV64 / "images").glob("*.jpg"))[:12]
SSD = MODELS / "ssd-mobilenet-v2-coco"
EXPECTED = {
    "yolov8": "yolov8",
    "yolov5": "yolov5",
    "end2end": "end2end",
    "efficient_nms": "efficient_nms",
    "tf_od": "tf_od",
    "detr": "detr",
    "detr_logits": "detr",
    "yolov8_seg": "yolov8",
    "yolov5_seg": "yolov5",
    "boxes_scores": "boxes_scores",
    "boxes_scores_t": "boxes_scores",
    "batch_rows": "batch_rows",
    "batch_rows_nas": "batch_rows",
    "mmdeploy": "end2end",
    "mmdeploy_seg": "end2end",
}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("layouts")
    built = {}
    for kind in LAYOUTS:
        (folder / kind).mkdir()
        built[kind] = build_layout(kind, folder / kind / f"yolox_{kind}.onnx")
    (folder / "u8").mkdir()
    built["uint8_nhwc"] = build_layout("yolov8", folder / "u8" / "yolox_u8.onnx", uint8_nhwc=True)
    return built


def run(spec: ModelSpec, path: Path, conf: float = 0.3) -> list[Detections]:
    with make_runner("ort-cpu", path) as runner:
        pipe = FramePipeline(spec, runner)
        pipe.conf, pipe.iou = conf, NMS_IOU  # the layouts' in-graph NMS IoU
        return [pipe.process(read_image(p)).detections for p in PHOTOS]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a [N, 4] and b [M, 4] (x1, y1, x2, y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def matched(ref: list[Detections], got: list[Detections], min_iou: float = 0.9) -> float:
    """Share of reference detections with a same-class detection at IoU >= min_iou."""
    total = found = 0
    for r, g in zip(ref, got):
        total += len(r)
        if len(r) and len(g):
            ious = iou(r.boxes, g.boxes) * (r.class_ids[:, None] == g.class_ids[None, :])
            found += int(np.sum(ious.max(axis=1) >= min_iou))
    return found / max(total, 1)


@pytest.fixture(scope="module")
def reference() -> tuple[ModelSpec, list[Detections], list[Detections]]:
    """The raw YOLOX model: (spec, detections as its preset feeds it, detections when fed the
    same pixels as an Ultralytics export: letterbox centred)."""
    spec = inspect_model(YOLOX)
    own = run(spec, Path(spec.path))
    centred = replace(spec, preprocess=replace(spec.preprocess, pad_center=True))
    return spec, own, run(centred, Path(spec.path))


@pytest.mark.parametrize("kind", LAYOUTS)
def test_layout_loads_right_and_matches_the_raw_model(kind, layouts, reference):
    spec = inspect_model(layouts[kind])
    pre = spec.preprocess
    assert spec.task == "detection" and spec.postprocess.decoder == EXPECTED[kind], spec.notes
    # [K, 7] rows: YOLOv7's class, score or YOLO-NAS's score, class, told apart on the probe
    assert spec.postprocess.score_first == (kind == "batch_rows_nas"), spec.notes
    assert (pre.resize, pre.pad_center, pre.pad_value, pre.color, pre.size) == (
        "letterbox",
        True,
        114,
        "RGB",
        [416, 416],
    )
    assert pre.scale == pytest.approx(1 / 255) and pre.mean == [0, 0, 0] and pre.std == [1, 1, 1]
    raw_spec, own, centred = reference
    assert spec.labels == raw_spec.labels and spec.labels[16] == "dog"
    low = run(spec, layouts[kind], conf=0.1)
    got = [d.filtered(0.3) for d in low]
    assert sum(len(d) for d in centred) >= 30  # the photos hold plenty to compare
    # the raw weights fed the same pixels: the same boxes (IoU >= 0.9, same class), both ways
    assert matched(centred, got) == 1.0 and matched(got, centred) == 1.0
    # the raw model as its own preset feeds it (letterbox top-left, so every box sits on other
    # pixels and moves a little): the same objects, found at IoU >= 0.7 (measured 98%)
    assert matched(own, low, min_iou=0.7) >= 0.95


def test_layouts_are_recognised_on_real_photos_too(layouts):
    for kind in ("yolov5", "detr", "end2end"):
        spec = inspect_model(layouts[kind], probe_images=PHOTOS[:3])
        assert spec.postprocess.decoder == EXPECTED[kind], spec.notes
        assert any("judged on 3 frames" in n for n in spec.notes)


def test_yolov5_without_metadata_is_told_from_yolov8_by_its_objectness(tmp_path):
    """[1, 3549, 85] with no names: 80 classes + objectness, or 81 classes without it."""
    path = build_layout("yolov5", tmp_path / "v5_plain.onnx", meta=False)
    spec = inspect_model(path, probe_images=PHOTOS[:3])
    assert spec.postprocess.decoder == "yolov5" and len(spec.labels) == 80, spec.notes
    assert any("not yolov8" in n for n in spec.notes)


def test_uint8_nhwc_dynamic_batch_input_is_fed_unscaled(layouts, reference):
    spec = inspect_model(layouts["uint8_nhwc"])
    pre = spec.preprocess
    assert pre.layout == "NHWC"
    # its batch is declared free, but the decoding appended here squeezes axis 0: seen at
    # inspection, so every step feeds one image at a time
    assert spec.input_shape[0] == 1 and any("a batch of 2 fails" in n for n in spec.notes)
    assert (pre.input_dtype, pre.scale, pre.color, pre.pad_center) == ("uint8", 1.0, "RGB", True)
    with make_runner("ort-cpu", layouts["uint8_nhwc"]) as runner:
        pipe = FramePipeline(spec, runner)
        tensor, _ = pipe.pre(read_image(PHOTOS[0]))
        assert tensor.dtype == np.uint8 and tensor.shape == (1, 416, 416, 3)
    got = run(spec, layouts["uint8_nhwc"])
    assert matched(reference[2], got) == 1.0 and matched(got, reference[2]) == 1.0


def test_ssd_mobilenet_loads_with_coco_names_and_finds_people_cars_cups():
    spec = inspect_model(SSD)
    pre, post = spec.preprocess, spec.postprocess
    assert post.decoder == "tf_od" and post.class_offset == 0 and post.boxes_normalized
    assert post.outputs["boxes"] == "TFLite_Detection_PostProcess"
    assert (pre.input_dtype, pre.layout, pre.resize, pre.color, pre.size) == (
        "uint8",
        "NHWC",
        "stretch",
        "RGB",
        [300, 300],
    )
    # the 90-id scheme: names at their ids, the unused ids in between named by number
    assert spec.labels[0] == "person" and spec.labels[2] == "car" and spec.labels[46] == "cup"
    assert spec.labels[11] == "class 11" and spec.labels[12] == "stop sign"
    photos = sorted((COCO_DEV64 / "images").glob("*.jpg"))
    found: dict[str, int] = {}
    with make_runner("ort-cpu", spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        for path in photos:
            image = read_image(path)
            dets = pipe.process(image).detections
            h, w = image.shape[:2]
            for box, cid in zip(dets.boxes, dets.class_ids):
                assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
                found[spec.label(int(cid))] = found.get(spec.label(int(cid)), 0) + 1
    assert found.get("person", 0) >= 20 and found.get("car", 0) >= 3 and found.get("cup", 0) >= 1
    assert not any(name.startswith("class ") for name in found)


def test_fused_io_runs_uint8_and_nms_models_as_live_and_run_do(layouts, tmp_path):
    """Live and `run` wrap models for uint8 frames (graph_fusion); a model whose input is
    already uint8 is only renamed, and decoders after NMS see the same outputs."""
    image = read_image(PHOTOS[0])
    for model in (SSD, layouts["uint8_nhwc"], layouts["efficient_nms"]):
        spec = inspect_model(model)
        runner, fused = runner_for_pipeline("ort-cpu", spec.path, spec, cache_dir=tmp_path)
        assert fused
        with runner, make_runner("ort-cpu", spec.path) as plain:
            got = FramePipeline(spec, runner, fused=True).process(image).detections
            want = FramePipeline(spec, plain).process(image).detections
        assert len(want) >= 3 and matched([want], [got]) == 1.0 and matched([got], [want]) == 1.0


def test_a_preset_matched_only_by_names_gives_way_when_its_layout_does_not_fit(tmp_path):
    """A YOLOv5 export named like official YOLOX (input 'images', output 'output') matches the
    YOLOX preset's signature; its decoded boxes do not read as a raw grid."""
    import onnx

    path = build_layout("yolov5", tmp_path / "old_v5.onnx", meta=False)
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if "output0" in n.output)
    node.output[0] = model.graph.output[0].name = "output"
    onnx.save(model, str(path))
    spec = inspect_model(path, probe_images=PHOTOS[:3])
    assert spec.postprocess.decoder == "yolov5" and spec.preset == "", spec.notes
    assert "preset YOLOX (official Megvii export) matched only by" in spec.notes[0]


@pytest.mark.parametrize("meta", [True, False])
def test_six_feature_rows_of_a_two_class_yolov8_are_not_read_as_end_to_end(tmp_path, meta):
    """[1, 6, 3549]: a two-class YOLOv8 (person, car), not six-column decoded boxes; the
    class column of an end-to-end reading would hold fractions."""
    path = build_layout("yolov8", tmp_path / "two.onnx", classes=[0, 2], meta=meta)
    spec = inspect_model(path, probe_images=PHOTOS[:3])
    post = spec.postprocess
    assert (post.decoder, post.transposed, len(spec.labels)) == ("yolov8", True, 2), spec.notes
    assert any(n.startswith("not end2end: its class column holds fractions") for n in spec.notes)
    if meta:
        assert spec.labels == ["person", "car"]
        people = run(spec, path)
        assert sum(len(d) for d in people) >= 10
        assert set(np.concatenate([d.class_ids for d in people]).tolist()) <= {0, 1}


def test_mmdeploy_dets_and_labels_without_metadata_are_read(tmp_path):
    """MMDeploy writes no class names or sizes: the two outputs alone say what they are, even
    when the synthetic probe frames find nothing (dets [1, 0, 5])."""
    spec = inspect_model(build_layout("mmdeploy", tmp_path / "mmd.onnx", meta=False))
    assert spec.postprocess.decoder == "end2end", spec.notes
    assert spec.postprocess.outputs == {"detections": "dets", "labels": "labels"}
    assert not spec.postprocess.boxes_normalized
    assert any("(MMDeploy)" in n for n in spec.notes)
