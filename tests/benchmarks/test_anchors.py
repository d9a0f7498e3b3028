"""The anchors benchmark's own plumbing, on the real YOLOX-Nano and photos: the protocol's image
sets, ORT's stock quantize_static building a real Q/DQ graph that the app's evaluation scores,
and a ModelOpt that cannot run recorded as such instead of stopping the run. Figures are not
asserted beyond what any quantized graph must show (calibration here uses 4 images)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import onnx
import pytest

from app.benchmarks.anchors import rows_of, run
from app.benchmarks.modelopt_ptq import modelopt_importable, run_modelopt
from app.benchmarks.stock_ort import calibration_tensors
from app.benchmarks.unseen_images import dev64_half, video_frames
from app.core.frames.sources import list_images
from app.core.model.inspection import inspect_model
from tests.assets import ASSETS, COCO_DEV64, VIDEOS, YOLOX, needs_assets

pytestmark = needs_assets


def test_dev64_halves_are_disjoint_and_keep_their_labels(tmp_path):
    tuning = dev64_half(ASSETS, tmp_path / "tuning", "tuning")
    unseen = dev64_half(ASSETS, tmp_path / "unseen", "unseen")
    t_names = {p.name for p in list_images(tuning)}
    u_names = {p.name for p in list_images(unseen)}
    everything = [p.name for p in list_images(COCO_DEV64 / "images")]
    assert len(t_names) == len(u_names) == 32 and not t_names & u_names
    assert sorted(t_names) == everything[:32] and sorted(u_names) == everything[32:]
    for name in u_names:  # each labelled photo's label file came along, the same bytes
        src = COCO_DEV64 / "labels" / name.replace(".jpg", ".txt")
        if src.is_file():
            assert (unseen.parent / "labels" / src.name).read_bytes() == src.read_bytes()
    with pytest.raises(ValueError):
        dev64_half(ASSETS, tmp_path / "x", "all")


def test_video_frames_take_every_nth_frame_of_each_video(tmp_path):
    frames = list_images(video_frames(ASSETS, tmp_path / "frames", step=200))
    videos = sorted(VIDEOS.glob("*.mp4"))
    assert {p.name.rsplit("_", 1)[0] for p in frames} == {v.stem for v in videos}
    assert all(int(p.stem.rsplit("_", 1)[1]) % 200 == 0 for p in frames)
    assert frames[0].stat().st_size > 10_000  # a real decoded picture, not an empty file


def test_stock_quantize_static_is_built_and_scored_and_a_missing_modelopt_is_recorded(tmp_path):
    if modelopt_importable():
        pytest.skip("ModelOpt is importable here; this test runs the path where it is not")
    args = argparse.Namespace(
        assets=str(ASSETS),
        methods="fp32,ort-stock-minmax,modelopt-max",
        modelopt_python=sys.executable,  # this Python has no ModelOpt: the worker must say so
        count=4,
        seconds=0.3,
        no_frames=True,
    )
    report = run(args, tmp_path)
    assert "ModelOpt" in report["errors"]["modelopt-max"]
    built = report["built"]["ort-stock-minmax"]
    assert built["calibrate_method"] == "MinMax" and built["calibration_images"] == 4
    graph = onnx.load(str(tmp_path / "yolox" / "variants" / "ort-stock-minmax.onnx"))
    producers = {o: n.op_type for n in graph.graph.node for o in n.output}
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    # no node excluded: every convolution reads a dequantized input and dequantized weights
    assert convs and all(producers.get(n.input[0]) == "DequantizeLinear" for n in convs)
    assert all(producers.get(n.input[1]) == "DequantizeLinear" for n in convs)
    photos = report["scores"]["photos"]
    assert photos["images"] == 32 and photos["labelled"]
    stock = photos["variants"]["ort-stock-minmax"]["metrics"]
    assert math.isfinite(stock["mAP50_95"]) and 0 < stock["agreement_mAP50_95"] < 100
    assert photos["variants"]["fp32"]["metrics"]["agreement_mAP50_95"] == 100
    assert set(report["latency"]["x_fp32"]) == {"fp32", "ort-stock-minmax"}
    rows = {r[0]: r for r in rows_of(report)}
    assert rows["modelopt-max"][1].startswith("not run: ModelOpt")
    assert rows["ort-stock-minmax"][2].startswith("-")  # its difference to FP32, with a CI


@pytest.mark.skipif(
    not modelopt_importable(),
    reason="NVIDIA ModelOpt is not installed for this Python (not an app dependency; "
    'pip install "nvidia-modelopt[onnx]" in a separate environment)',
)
def test_modelopt_builds_a_qdq_graph(tmp_path):
    spec = inspect_model(YOLOX)
    tensors = calibration_tensors(spec, ASSETS / "images" / "coco-train128" / "images", 2)
    out = tmp_path / "modelopt.onnx"
    meta = run_modelopt(Path(spec.path), out, tensors, "max")
    assert "error" not in meta, meta
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
