"""Q/DQ INT8 and FP16 variants on the real models, their caching, and the evaluate report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from app.backends.onnxrt import OrtRunner
from app.cli.main import main
from app.core.errors import UserError
from app.core.frames.imageio import read_image
from app.core.frames.pipeline import FramePipeline
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import latest_calibration
from app.core.quant.quantize import quantize
from tests.conftest import IMAGES, RESNET8, YOLOX, needs_assets
from tests.workspaces import minmax_workspace

pytestmark = needs_assets
COCO = IMAGES / "coco-train128" / "images"


@pytest.fixture(scope="module")
def yolox_ws(tmp_path_factory):
    return minmax_workspace(tmp_path_factory, inspect_model(YOLOX))


def _initializers(model):
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_int8_for_tensorrt_is_symmetric_on_compute_inputs_only(yolox_ws):
    meta = quantize(yolox_ws, precisions=["int8"], target="tensorrt")[0]
    model = onnx.load(str(yolox_ws.variant_path(meta["name"])))
    assert meta["name"] == "int8-trt" and meta["opset"] >= 13
    inits = _initializers(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert qs
    for q in qs:
        zp = inits[q.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), "TensorRT needs int8 zero points of 0"
        src = producers.get(q.input[0])
        assert src is None or src.op_type != "Conv", f"{q.name} quantizes a conv output"
    # weights are per-channel on the output-channel axis
    weight_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim == 4
    ]
    assert weight_dq and all(
        next(a.i for a in n.attribute if a.name == "axis") == 0 for n in weight_dq
    )


def test_int8_for_ort_cpu_keeps_the_output_head_float_and_uses_uint8(yolox_ws):
    meta = quantize(yolox_ws, precisions=["int8"], target="ort-cpu")[0]
    model = onnx.load(str(yolox_ws.variant_path("int8")))
    inits = _initializers(model)
    act_zps = {inits[n.input[2]].dtype for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert act_zps == {np.dtype(np.uint8)}
    assert meta["compute_ops_kept_float"] >= 9  # the nine prediction convs of the three heads
    producers = {o: n for n in model.graph.node for o in n.output}
    final = producers[model.graph.output[0].name]
    assert all(producers[i].op_type != "DequantizeLinear" for i in final.input if i in producers)


def test_variants_are_reused_and_damaged_ones_rebuilt(yolox_ws):
    first = quantize(yolox_ws, precisions=["fp16"])[0]
    again = quantize(yolox_ws, precisions=["fp16"])[0]
    assert again["reused"] and again["sha256"] == first["sha256"]
    path = yolox_ws.variant_path("fp16")
    path.write_bytes(path.read_bytes()[:1000])  # truncated on disk
    assert not yolox_ws.valid_variant("fp16")
    rebuilt = quantize(yolox_ws, precisions=["fp16"])[0]
    assert not rebuilt["reused"] and yolox_ws.valid_variant("fp16")
    with pytest.raises(UserError, match=r"'int8-nonexistent' is not in .*check the name"):
        yolox_ws.require_variant("int8-nonexistent")


def test_fp16_keeps_float32_io_and_finds_the_same_objects(yolox_ws):
    quantize(yolox_ws, precisions=["fp16"])
    model = onnx.load(str(yolox_ws.variant_path("fp16")))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    spec = yolox_ws.spec()
    img = read_image(IMAGES / "photos-misc103" / "dog_3.jpg")
    results = []
    for path in (spec.path, yolox_ws.variant_path("fp16")):
        with OrtRunner(path) as runner:
            d = FramePipeline(spec, runner).process(img.copy()).detections
            results.append(sorted(spec.label(int(c)) for c in d.class_ids[d.scores > 0.4]))
    assert results[0] == results[1]


def test_quantize_without_calibration_says_what_to_do(tmp_path):
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    with pytest.raises(UserError, match="run `int8-studio calibrate` first"):
        quantize(ws, precisions=["int8"])


def test_cli_calibrate_quantize_evaluate_on_resnet8(tmp_path):
    cal, val = tmp_path / "cal", tmp_path / "val"
    for cls_dir in sorted((IMAGES / "cifar10-test500").iterdir()):
        files = sorted(cls_dir.glob("*.jpg"))
        (cal / cls_dir.name).mkdir(parents=True)
        (val / cls_dir.name).mkdir(parents=True)
        for f in files[:10]:
            shutil.copy(f, cal / cls_dir.name / f.name)
        for f in files[10:30]:
            shutil.copy(f, val / cls_dir.name / f.name)
    ws = tmp_path / "ws"
    assert (
        main(
            [
                "calibrate",
                "--model",
                str(RESNET8),
                "--images",
                str(cal),
                "--workspace",
                str(ws),
                "--method",
                "minmax",
                "--json",
                str(tmp_path / "c.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "c.json").read_text())["images"] == 100
    assert main(["quantize", "--workspace", str(ws)]) == 0
    assert (
        main(
            [
                "evaluate",
                "--workspace",
                str(ws),
                "--images",
                str(val),
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["task"] == "classification" and report["labelled"]
    by_name = {v["name"]: v for v in report["variants"]}
    assert set(by_name) == {"fp32", "fp16", "int8"}
    for v in by_name.values():
        assert (
            set(v["latency_ms"]) == {"p50", "p90", "p99"}
            and v["provider"] == "CPUExecutionProvider"
        )
        assert {"top1", "top5", "top1_agreement"} <= set(v["metrics"])
    assert by_name["fp32"]["metrics"]["top1"] > 60
    assert abs(by_name["fp16"]["metrics"]["top1"] - by_name["fp32"]["metrics"]["top1"]) <= 1.0


def test_evaluating_on_the_calibration_images_is_flagged(yolox_ws, tmp_path, capsys):
    """INT8's ranges were fitted to its calibration images: scored on them it looks better than
    on new ones, so evaluate says when the evaluation folder shares images with the calibration
    of the variants it scores, and stays quiet on other images."""
    quantize(yolox_ws, precisions=["int8"], target="ort-cpu")
    calib = json.loads((latest_calibration(yolox_ws) / "meta.json").read_text())
    folder = Path(calib["images_used"][0]).parent
    ws = str(yolox_ws.root)
    assert (
        main(["evaluate", "--workspace", ws, "--images", str(folder), "--variants", "fp32,int8"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"warning: {len(calib['images_used'])} of " in out and "also calibrated" in out
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for path in sorted((IMAGES / "coco-val-dev64" / "images").glob("*.jpg"))[:3]:
        shutil.copy(path, fresh / path.name)
    assert (
        main(["evaluate", "--workspace", ws, "--images", str(fresh), "--variants", "fp32,int8"])
        == 0
    )
    assert "also calibrated" not in capsys.readouterr().out
