"""Activation equalisation on the real YOLOX-Nano: exact in float on real photos, evens out the
stem SiLU output (the input of Conv_44), and the equalised INT8 graphs of both layouts build,
quantize that tensor and run."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from app.cli.main import main
from app.core.errors import UserError
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.ort_session import cpu_session
from app.core.quant.calibration import calibrate
from app.core.quant.equalize import (
    apply_site,
    find_sites,
    input_channel_weight_max,
    smooth_scales,
    uneven,
)
from app.core.quant.equalize_ranges import channel_max
from app.core.quant.graph_rules import MIN_QDQ_OPSET, compute_nodes, name_nodes, raise_opset
from app.core.quant.quantize import quantize
from app.core.quant.recipe import float_summary
from app.core.quant.shift import shift_origins
from tests.assets import COCO_DEV64, IMAGES, MOBILENET, YOLOX, needs_assets
from tests.workspaces import copy_photos

pytestmark = needs_assets
STEM = "687"  # the stem SiLU output, read by Conv_44


@pytest.fixture(scope="module")
def yolox():
    spec = inspect_model(YOLOX)
    model = name_nodes(raise_opset(onnx.load(spec.path), MIN_QDQ_OPSET))
    pre = Preprocessor(spec.preprocess)
    photos = [pre(read_image(p))[0] for p in sorted((COCO_DEV64 / "images").glob("*.jpg"))[:4]]
    return spec, model, photos


def _equalised(model, spec, photos, fold: bool):
    sites = find_sites(model, set(compute_nodes(model)))
    amax = channel_max(model, [s.tensor for s in sites], spec.input_name, photos)
    out = onnx.ModelProto.FromString(model.SerializeToString())
    done = []
    for site in sites:
        if uneven(amax[site.tensor]):
            scales = smooth_scales(amax[site.tensor], input_channel_weight_max(out, site))
            apply_site(out, site, scales, fold_producer=fold)
            done.append(site)
    return out, done, amax


@pytest.mark.parametrize("fold", [False, True], ids=["tensorrt-layout", "ort-cpu-layout"])
def test_equalised_graph_computes_the_same_in_float(yolox, fold):
    spec, model, photos = yolox
    eq, done, _ = _equalised(model, spec, photos[:2], fold)
    assert STEM in [s.tensor for s in done]
    onnx.checker.check_model(eq)
    ref, new = cpu_session(model), cpu_session(eq)
    for x in photos:  # two photos the scales were not computed on
        a = ref.run(None, {spec.input_name: x})[0]
        b = new.run(None, {spec.input_name: x})[0]
        assert np.abs(a - b).max() <= 3e-4, np.abs(a - b).max()


def test_equalisation_evens_out_the_stem_activation(yolox):
    spec, model, photos = yolox
    eq, _, amax = _equalised(model, spec, photos, fold=True)
    before = amax[STEM]
    after = channel_max(eq, [f"{STEM}__eq"], spec.input_name, photos)[f"{STEM}__eq"]
    # one symmetric int8 step of the whole tensor: channels below it quantize to nothing
    assert (before < before.max() / 127).sum() >= 2
    assert (after < after.max() / 127).sum() == 0
    spread = lambda a: a.max() / np.median(a)  # noqa: E731
    assert spread(after) < spread(before) / 2, (spread(before), spread(after))


@pytest.fixture(scope="module")
def yolox_ws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    copy_photos(folder, 8)
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path_factory.mktemp("ws"))
    calibrate(ws, folder, method="minmax")
    return ws, folder


# ort-cpu, equalised, keeps Conv_41 and Conv_44 float (its quantized Conv_41 output cost
# agreement with FP32 on the tuning photos whatever the equalisation) and quantizes Conv_47,
# which the recipe kept float before: the equalised tensor it reads, and that convolution.
ORT_CPU_STEM_SITE = ("691", "Conv_47")


def _quantized_inputs(graph: onnx.ModelProto) -> set[str]:
    """What the graph's QuantizeLinears read, a shifted tensor named by its source (`shift`)."""
    origins = shift_origins(graph)
    return {
        origins.get(n.input[0], {}).get("source", n.input[0])
        for n in graph.graph.node
        if n.op_type == "QuantizeLinear"
    }


def _agrees_with_fp32(spec, path, photos) -> None:
    ref, q = cpu_session(spec.path), cpu_session(path)
    for x in photos[:2]:
        a = ref.run(None, {spec.input_name: x})[0][0, :, 4]  # objectness per anchor point
        b = q.run(None, {spec.input_name: x})[0][0, :, 4]
        assert np.corrcoef(a, b)[0, 1] > 0.95


def test_equalised_ort_cpu_int8_quantizes_the_stem_and_runs(yolox_ws, yolox):
    ws, _ = yolox_ws
    spec, _, photos = yolox
    tensor, conv = ORT_CPU_STEM_SITE
    meta = quantize(ws, precisions=["int8"], target="ort-cpu", equalize=True)[0]
    assert tensor in meta["equalization"]["tensors"]
    assert conv not in meta["kept_float"]
    assert meta["compute_ops_kept_float"] < 12  # the recipe before equalisation kept 12
    graph = onnx.load(str(ws.variant_path(meta["name"])))
    assert f"{tensor}__eq" in _quantized_inputs(graph)
    _agrees_with_fp32(spec, ws.variant_path(meta["name"]), photos)


def test_tensorrt_equalised_around_its_float_stem_runs_and_the_default_is_not(
    yolox_ws, yolox, capsys
):
    """`quantize --equalize` builds int8-eq-trt beside int8-trt: equalised (QUANTIZE_VERSION 16)
    the TensorRT layout keeps the blocks its default keeps float (the stem, the sensitive
    blocks), and its conv inputs are then shifted onto the whole symmetric grid as before. The
    default int8-trt is not equalised (it hurt a ReLU detector)."""
    ws, _ = yolox_ws
    spec, _, photos = yolox
    args = ["--workspace", str(ws.root), "--precision", "int8", "--target", "tensorrt"]
    assert main(["quantize", *args, "--equalize"]) == 0
    out = capsys.readouterr().out
    meta, plain = ws.variant_meta("int8-eq-trt"), ws.variant_meta("int8-trt")
    assert "int8-eq-trt" in out and "int8-trt " in out
    assert meta["equalization"]["tensors"] and "equalization" not in plain
    assert meta["key"] != plain["key"]
    assert sorted(meta["kept_float"]) == sorted(plain["kept_float"])
    assert {"Conv_41", "Conv_44"} <= set(meta["kept_float"])  # the stem stays float
    assert STEM not in meta["equalization"]["tensors"]  # read by the float Conv_44 only
    graph = onnx.load(str(ws.variant_path(meta["name"])))
    quantized = _quantized_inputs(graph)
    equalised = [t for t in meta["equalization"]["tensors"] if f"{t}__eq" in quantized]
    assert equalised and not set(equalised) & quantized  # conv inputs read scaled, then shifted
    assert meta["shift"]["tensors"]
    n = len(meta["equalization"]["tensors"])
    assert f"float: {float_summary(meta)}" in out and f"; {n} uneven conv inputs equalised" in out
    _agrees_with_fp32(spec, ws.variant_path(meta["name"]), photos)


def test_equalised_variant_has_its_own_cache_key(yolox_ws):
    ws, _ = yolox_ws
    eq = quantize(ws, precisions=["int8"], variant_name="int8-eq", equalize=True)[0]
    plain = quantize(ws, precisions=["int8"], variant_name="int8-plain", equalize=False)[0]
    assert eq["key"] != plain["key"]
    assert "equalization" not in plain and "Conv_41" in plain["kept_float"]
    # ort-cpu's default stays unequalised (its float SiLUs cost more time than they gained)
    default = quantize(ws, precisions=["int8"], variant_name="int8-default")[0]
    assert default["key"] == plain["key"] and default["sha256"] == plain["sha256"]


def test_calibration_images_gone_is_a_user_error(tmp_path, yolox_ws):
    ws, folder = yolox_ws
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    shutil.rmtree(folder)
    try:
        with pytest.raises(UserError, match="calibration image is gone"):
            quantize(
                ws,
                precisions=["int8"],
                target="tensorrt",
                variant_name="int8-after-move",
                equalize=True,
            )
    finally:
        shutil.copytree(moved, folder)


def test_a_model_without_uneven_activations_gets_the_graph_it_got_before(tmp_path):
    """MobileNetV1's activations are Clip (ReLU6, not homogeneous) and no SiLU: nothing to
    equalise, so the equalised INT8 graph is byte for byte the one built without equalisation."""
    folder = tmp_path / "calib"
    folder.mkdir()
    copy_photos(folder, 8, IMAGES / "photos-misc103")
    ws = Workspace.for_model(inspect_model(MOBILENET), tmp_path / "ws")
    calibrate(ws, folder, method="minmax")
    eq = quantize(ws, precisions=["int8"], target="tensorrt", equalize=True)[0]
    plain = quantize(
        ws, precisions=["int8"], target="tensorrt", variant_name="int8-plain", equalize=False
    )[0]
    assert eq["equalization"]["tensors"] == []
    assert eq["kept_float"] == plain["kept_float"] and eq["kept_float"]
    assert eq["sha256"] == plain["sha256"]
