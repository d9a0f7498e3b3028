"""The default ort-cpu INT8 recipe keeps float the blocks that alone wreck the output (issue 17):
on the real YOLOX-Nano that is the stem and `Conv_67` -> SiLU -> the depthwise `Conv_70`, whose
input channels vary by less than one uint8 step. Measured once per calibration; the INT8 graph
it gives agrees better with FP32 on video frames that no calibration used."""

from __future__ import annotations

import json
import re
from pathlib import Path

import onnx
import pytest

from app.backends.factory import make_runner
from app.benchmarks.int8_unseen import video_frames
from app.core.eval.evaluate import evaluate
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.quantize import quantize
from app.core.quant.sensitive_blocks import analysis_files, file_name, outlier_blocks
from tests.assets import ASSETS, CIFAR, RESNET8, YOLOX, needs_assets
from tests.workspaces import add_stem_only_int8, copy_photos

pytestmark = needs_assets


@pytest.fixture(scope="module")
def yolox_ws(tmp_path_factory):
    folder = copy_photos(tmp_path_factory.mktemp("calib"), 128)
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path_factory.mktemp("ws"))
    calibrate(ws, folder)
    return ws


def test_yolox_default_keeps_the_wrecking_block_float_and_agrees_better(yolox_ws, tmp_path):
    meta = quantize(yolox_ws, precisions=["int8"], target="ort-cpu")[0]
    assert {"Conv_67", "Conv_70"} <= set(meta["sensitive_blocks_float"])
    calib = latest_calibration(yolox_ws)
    record = calib / file_name("ort-cpu")
    measured = record.stat().st_mtime_ns
    qmodel = onnx.load(str(yolox_ws.variant_path("int8")))
    conv70_input = next(n.input[0] for n in qmodel.graph.node if n.name == "Conv_70")
    assert not any(
        n.op_type == "DequantizeLinear" and conv70_input in n.output for n in qmodel.graph.node
    )

    # the same recipe with only the stem float (what the default was before)
    add_stem_only_int8(yolox_ws, "stem-only")
    report = evaluate(
        yolox_ws,
        # every 20th frame of both videos (130), never calibrated on: half the protocol's,
        # for the suite's time; the margin below is 20 points
        video_frames(ASSETS, tmp_path, step=20),
        variants=["int8", "stem-only"],
        runner_factory=make_runner,
    )
    agreement = {v["name"]: v["metrics"]["agreement_mAP50_95"] for v in report["variants"]}
    # measured: 83.5 against 61.0 (mAP50-95 against FP32's own detections, 259 frames; with
    # 16 and 32 calibration photos 83.3 against 81.1 and 84.1 against 68.6 before the measurement
    # turned ORT's weight rounding off; since then Conv_67 misses the 20 dB margin on 32
    # photos, at the rule's edge, and 21.4 dB below on all 128)
    assert agreement["int8"] > agreement["stem-only"] + 3, agreement

    # measured once per calibration: another variant from it reuses the record
    quantize(yolox_ws, precisions=["int8"], target="ort-cpu", variant_name="int8-again")
    assert record.stat().st_mtime_ns == measured
    # the TensorRT layout, shifted onto the whole int8 grid (`shift`), measures its own: the
    # stem blocks and Conv_67 -> Conv_70 stand apart there too
    trt = quantize(yolox_ws, precisions=["int8"], target="tensorrt")[0]
    assert (calib / file_name("tensorrt")).exists()
    assert "Conv_70" in trt["sensitive_blocks_float"], trt["sensitive_blocks_float"]
    assert trt["shift"]["convs"] > 0 and trt["bias_correction"]["convs"] > 0
    # equalised (`quantize --equalize`) it keeps them float too; its biases fold the shifts,
    # exactly, but are not corrected: the channel means were measured on the unequalised graph
    eq = quantize(yolox_ws, precisions=["int8"], target="tensorrt", equalize=True,
                  variant_name="int8-eq-trt")[0]  # fmt: skip
    assert eq["equalization"]["tensors"] and eq["kept_float"] == trt["kept_float"]
    assert eq["shift"]["convs"] > 0 and eq["shift"]["exact_biases"] > 0
    assert eq["bias_correction"]["convs"] == 0 and "equalised" in eq["bias_correction"]["reason"]


def test_only_blocks_far_below_the_median_are_outliers():
    blocks = [{"block": f"b{i}", "output_sqnr_db": 35.0 + i % 5} for i in range(40)]
    blocks += [{"block": "bad", "output_sqnr_db": 12.0}, {"block": "meh", "output_sqnr_db": 19.4}]
    assert [b["block"] for b in outlier_blocks(blocks)] == ["bad"]
    assert outlier_blocks(blocks[:3]) == []  # too few blocks to call one atypical
    # far below a median of 80 dB, but at 59 dB harmless: nothing to keep float
    quiet = [{"block": f"q{i}", "output_sqnr_db": 80.0} for i in range(20)]
    assert outlier_blocks([*quiet, {"block": "fine", "output_sqnr_db": 59.0}]) == []


def test_quantize_command_says_what_stayed_float_and_why(yolox_ws, capsys):
    from app.cli.main import main

    assert main(["quantize", "--workspace", str(yolox_ws.root), "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"float: int8: \d+ of 113 convolutions/matmuls kept float, \d+ because", out)


def test_quantize_progress_covers_the_measurement_and_never_goes_back(tmp_path):
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    calibrate(ws, copy_photos(tmp_path / "cal", 4), method="minmax")
    seen: list[tuple[float, str]] = []
    quantize(ws, precisions=["int8", "fp16"], progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    measuring = [f for f, m in seen if "blocks INT8 must not touch" in m]
    assert len(measuring) > 10 and max(measuring) <= 0.25  # half of int8's half of the bar


def test_analysis_images_span_a_class_sorted_folder():
    files = [Path(f"{c}/{i}.jpg") for c in ("airplane", "bird", "cat", "dog") for i in range(10)]
    picked = analysis_files(files, 8)
    assert len(picked) == 8
    assert {p.parent.name for p in picked} == {"airplane", "bird", "cat", "dog"}
    assert analysis_files(files[:3], 8) == files[:3]


def test_resnet8_stem_is_not_an_outlier_on_a_class_sorted_folder(tmp_path):
    # CIFAR-10 is sorted by class: measured on its first 4 images (all airplanes) the stem block
    # looked 26 dB below the median, and keeping it float with its consumers cost ResNet-8 2 points
    # of INT8 top-1 (72.8 against 74.8). Spread over the set it is 13-18 dB below: no outlier.
    ws = Workspace.for_model(inspect_model(RESNET8), tmp_path / "ws")
    folder = tmp_path / "cal"
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        (folder / cls.name).mkdir(parents=True)
        for f in sorted(cls.glob("*.jpg"))[::2]:
            (folder / cls.name / f.name).symlink_to(f)
    calibrate(ws, folder)
    meta = quantize(ws, precisions=["int8"], target="ort-cpu")[0]
    record = json.loads((latest_calibration(ws) / file_name("ort-cpu")).read_text())
    assert record["images"] == 8 and record["sampling"] == "spread"
    assert record["median_db"] > 30  # measured: 35.2
    assert meta["sensitive_blocks_float"] == [], record["blocks"]


def test_downstream_runs_measure_what_whole_graph_runs_measure(tmp_path, monkeypatch):
    """`output_sensitivity` re-runs only the part of the graph a block reaches, from cached
    float activations: every block's output SQNR equals the whole-graph measurement's (ResNet-8,
    whose residual Adds make the reached part more than a chain)."""
    from app.core.errors import CancelToken
    from app.core.quant import block_sensitivity
    from app.core.quant.quantize import make_int8
    from app.core.quant.sensitive_blocks import _measure

    cal = tmp_path / "cal"
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir())[:4]:
        copy_photos(cal / cls.name, 2, cls)
    ws = Workspace.for_model(inspect_model(RESNET8), tmp_path / "ws")
    calibrate(ws, cal, method="minmax")
    calib = latest_calibration(ws)
    measured = {}
    for mode, limit in (("downstream", block_sensitivity.CACHE_BYTES), ("whole", -1)):
        monkeypatch.setattr(block_sensitivity, "CACHE_BYTES", limit)
        rows = _measure(ws, calib, "tensorrt", make_int8, CancelToken(), lambda f, m: None)
        measured[mode] = {r["block"]: r["output_sqnr_db"] for r in rows}
    assert len(measured["whole"]) >= 7
    assert measured["downstream"] == pytest.approx(measured["whole"], abs=0.02)
