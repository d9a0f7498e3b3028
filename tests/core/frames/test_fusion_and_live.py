"""Fused-I/O graphs give the same answers as the originals; the threaded live pipeline keeps order,
drops nothing on files, drops stale frames when asked, and stops cleanly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.backends.onnxrt import OrtRunner
from app.core.errors import CancelToken
from app.core.frames.graph_fusion import FUSED_INPUT, fused_model_path
from app.core.frames.imageio import read_image
from app.core.frames.live import measure_sequential, run_live, slowest_stage_rate
from app.core.frames.pipeline import FramePipeline
from app.core.frames.sources import Frame, FrameSource
from app.core.model.inspection import inspect_model
from tests.conftest import (
    HAGRID,
    IMAGES,
    MOBILENET,
    RESNET8,
    VIDEOS,
    YOLOX,
    YOLOX_TUTORIAL,
    needs_assets,
)

pytestmark = needs_assets


@pytest.mark.parametrize(
    "model", [YOLOX, YOLOX_TUTORIAL, MOBILENET, RESNET8, HAGRID], ids=lambda p: Path(p).stem
)
def test_fused_graph_matches_the_original(tmp_path, model):
    spec = inspect_model(model)
    fused = fused_model_path(Path(spec.path), spec, tmp_path)
    assert fused_model_path(Path(spec.path), spec, tmp_path) == fused  # cached by key
    image = read_image(IMAGES / "photos-misc103" / "dog_3.jpg")
    answers = []
    for path, is_fused in ((spec.path, False), (fused, True)):
        with OrtRunner(path) as runner:
            if is_fused:
                assert runner.inputs[0].name == FUSED_INPUT and runner.inputs[0].dtype == "uint8"
            answers.append(
                FramePipeline(spec, runner, fused=is_fused).process(image.copy()).to_json(spec)
            )
    plain, fast = answers
    if "detections" in plain:
        assert [d["label"] for d in plain["detections"]] == [d["label"] for d in fast["detections"]]
        for a, b in zip(plain["detections"], fast["detections"]):
            assert abs(a["score"] - b["score"]) < 1e-3
            assert np.allclose(a["box"], b["box"], atol=0.5)
    else:
        assert [t["class_id"] for t in plain["topk"]] == [t["class_id"] for t in fast["topk"]]


def test_fused_fp16_graph_casts_once_in_and_once_out(tmp_path):
    """FP16 variant: the uint8 frame is cast straight to FP16 (the variant's own FP32->FP16
    input cast is gone), the reduction runs on the FP16 head, and one Cast gives FP32 back;
    the answers match the unfused FP16 variant's."""
    import onnx

    from app.core.frames.graph_fusion import FUSED_OUTPUT
    from app.core.quant.quantize import make_fp16

    spec = inspect_model(YOLOX)
    fp16 = tmp_path / "fp16.onnx"
    make_fp16(Path(spec.path), fp16)
    fused = fused_model_path(fp16, spec, tmp_path)
    graph = onnx.load(str(fused)).graph
    users = [n for n in graph.node if FUSED_INPUT in n.input]
    assert [n.op_type for n in users] == ["Cast"]
    assert users[0].attribute[0].i == onnx.TensorProto.FLOAT16
    after = [n.op_type for n in graph.node if users[0].output[0] in n.input]
    assert after and "Cast" not in after  # YOLOX's Focus slices read the FP16 frame directly
    last = next(n for n in graph.node if FUSED_OUTPUT in n.output)
    assert last.op_type == "Cast" and last.attribute[0].i == onnx.TensorProto.FLOAT
    image = read_image(IMAGES / "photos-misc103" / "dog_3.jpg")
    answers = []
    for path, is_fused in ((fp16, False), (fused, True)):
        with OrtRunner(path) as runner:
            pipe = FramePipeline(spec, runner, fused=is_fused)
            answers.append(pipe.process(image.copy()).to_json(spec)["detections"])
    plain, fast = answers
    assert plain and [d["label"] for d in plain] == [d["label"] for d in fast]
    for a, b in zip(plain, fast):
        assert abs(a["score"] - b["score"]) < 2e-3
        assert np.allclose(a["box"], b["box"], atol=0.5)


def test_live_pipeline_processes_every_file_frame_in_order():
    spec = inspect_model(YOLOX)
    seen = []
    with OrtRunner(spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        stats = run_live(
            FrameSource(str(VIDEOS / "bottle-detection.mp4"), max_frames=30),
            pipe,
            lambda f, r, img: seen.append(f.index),
        )
        alone = measure_sequential(
            FrameSource(str(VIDEOS / "bottle-detection.mp4"), max_frames=10), pipe
        )
    assert seen == list(range(30)) and stats.frames_out == 30 and stats.dropped == 0
    assert stats.max_queue <= 2
    name, rate = slowest_stage_rate(alone)
    assert name in ("decode+preprocess", "infer", "postprocess+draw") and rate > 0
    assert {"decode_ms", "infer_ms", "draw_ms"} <= set(stats.stages)


def test_live_pipeline_preprocessing_ahead_gives_each_frame_its_own_answer():
    """Frames are preprocessed on the decode thread while earlier ones are still queued or in
    inference: every frame must still get exactly the detections a one-thread run gives it, in
    order."""
    spec = inspect_model(YOLOX)
    frames = list(FrameSource(str(VIDEOS / "one-by-one-person-detection.mp4"), max_frames=24))
    with OrtRunner(spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        expected = [pipe.process(f.image).detections for f in frames]
        got: dict[int, object] = {}
        run_live(
            (Frame(f.image.copy(), f.source, f.index) for f in frames),
            FramePipeline(spec, runner),
            lambda f, r, img: got.__setitem__(f.index, r.detections),
            draw=False,
            depth=2,
        )
    assert list(got) == [f.index for f in frames]  # arrival order
    assert sum(len(d) for d in expected) > 0
    for f, want in zip(frames, expected):
        have = got[f.index]
        assert np.array_equal(have.class_ids, want.class_ids), f.index
        assert np.allclose(have.boxes, want.boxes, atol=1e-3), f.index


def test_prepared_tensors_are_owned_when_asked():
    spec = inspect_model(YOLOX)
    image = read_image(IMAGES / "photos-misc103" / "dog_0.jpg")
    with OrtRunner(spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        ring = [pipe.prepare(image).tensor for _ in range(4)]
        owned = [pipe.prepare(image, own=True).tensor for _ in range(4)]
    assert ring[0] is ring[3]  # the ring wraps: a holder of ring[0] would see it overwritten
    assert len({id(t) for t in owned}) == 4 and all(np.array_equal(t, owned[0]) for t in owned)


def test_live_pipeline_drops_stale_frames_instead_of_queueing():
    spec = inspect_model(YOLOX)
    image = read_image(IMAGES / "photos-misc103" / "dog_0.jpg")
    frames = (
        Frame(image.copy(), "synthetic", i) for i in range(60)
    )  # arrives faster than inference
    with OrtRunner(spec.path) as runner:
        stats = run_live(frames, FramePipeline(spec, runner), drop_stale=True)
    assert stats.dropped > 0 and stats.frames_out + stats.dropped == 60
    assert stats.max_queue <= 2


def test_live_pipeline_cancels_and_leaves_no_threads():
    spec = inspect_model(YOLOX)
    before = threading.active_count()
    token = CancelToken()
    with OrtRunner(spec.path) as runner:

        def sink(frame, result, image):
            if frame.index == 3:
                token.cancel()

        start = time.perf_counter()
        stats = run_live(
            FrameSource(str(VIDEOS / "one-by-one-person-detection.mp4")),
            FramePipeline(spec, runner),
            sink,
            cancel=token,
        )
    assert stats.frames_out <= 8 and time.perf_counter() - start < 10
    assert threading.active_count() == before


@pytest.mark.parametrize("model", [YOLOX, RESNET8], ids=lambda p: Path(p).stem)
def test_warm_up_runs_the_model_once_and_times_nothing(tmp_path, model):
    """Session set-up is paid before the first frame (not in its latency), through the same
    fused graph and tensor layout the frames use; nothing reaches the stage timings."""
    spec = inspect_model(model)
    path = fused_model_path(Path(spec.path), spec, tmp_path)
    with OrtRunner(path) as runner:
        pipe = FramePipeline(spec, runner, fused=True)
        assert runner.last_infer_ms == 0.0
        assert pipe.warm_up()
        assert runner.last_infer_ms > 0.0
        assert not pipe.timer.summary()
        frame = read_image(next(iter(sorted((IMAGES / "coco-val-dev64" / "images").iterdir()))))
        pipe.process(frame)  # the real frame after it runs as usual
        assert set(pipe.timer.summary()) >= {"preprocess_ms", "infer_ms", "postprocess_ms"}


def test_warm_up_is_skipped_for_per_image_shapes():
    spec = inspect_model(YOLOX_TUTORIAL)
    spec.preprocess.short_side = 384
    spec.preprocess.resize = "short_side_crop"
    with OrtRunner(spec.path) as runner:
        pipe = FramePipeline(spec, runner)
        assert not pipe.warm_up()
        assert runner.last_infer_ms == 0.0
