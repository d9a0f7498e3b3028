"""Weights an exporter shares through Identity nodes (torch.onnx.export writes one initializer
for equal tensors, as an untrained model's zero biases are, and an Identity per other user) or
writes as Constant nodes (attention scales): the float graph the analyses compare against
inlines them, so every quantized weight has a float twin and ONNX Runtime's weight matching
logs no "weight tensor ... not found" (it did on real Ultralytics YOLOv8-seg and YOLO11-seg
exports)."""

from __future__ import annotations

import logging
import shutil

import onnx
from onnx import helper

from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from app.core.quant.quantize import quantize
from app.core.quant.space_to_depth import comparable_float
from tests.assets import CIFAR, RESNET8, needs_assets

pytestmark = needs_assets


def resnet8_sharing_a_bias(path):
    """ResNet-8 whose second and third convs (16 channels each) read the first one's bias, the
    third through an Identity, as torch writes shared weights; and whose fourth conv reads its
    weights from a Constant node."""
    model = onnx.load(str(RESNET8 / "resnet8_cifar10.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    shared = convs[1].input[2]
    model.graph.node.insert(0, helper.make_node("Identity", [shared], ["shared_bias_copy"]))
    convs[2].input[2] = "shared_bias_copy"
    weight = next(i for i in model.graph.initializer if i.name == convs[3].input[1])
    constant = helper.make_node("Constant", [], ["constant_weight"], value=weight)
    model.graph.node.insert(0, constant)
    convs[3].input[1] = "constant_weight"
    onnx.save(model, str(path))
    return path


def test_identity_shared_weights_have_float_twins(tmp_path, caplog):
    model = resnet8_sharing_a_bias(tmp_path / "shared.onnx")
    shutil.copy(RESNET8 / "labels_cifar10.txt", tmp_path / "labels_cifar10.txt")
    flat = comparable_float(model)
    assert not any(n.op_type in ("Identity", "Constant") for n in flat.graph.node)
    assert {"shared_bias_copy", "constant_weight"} <= {i.name for i in flat.graph.initializer}
    cal = tmp_path / "cal"
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        (cal / cls.name).mkdir(parents=True)
        for f in sorted(cls.glob("*.jpg"))[:2]:
            shutil.copy(f, cal / cls.name / f.name)
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, cal, method="minmax")
    with caplog.at_level(logging.ERROR):
        quantize(ws, precisions=("int8",))  # measures the sensitive blocks first
    assert ws.variant_path("int8").exists()
    assert not [r for r in caplog.records if "not found" in r.getMessage()], caplog.text


def test_weights_without_a_twin_are_said_once_in_words(tmp_path, caplog):
    """Matched against the graph as exported (its Identity and Constant weights not inlined),
    ONNX Runtime finds no twin for them: its raw root-logger errors stay off the terminal."""
    from app.core.quant.calibration import latest_calibration
    from app.core.quant.quantize import make_int8
    from app.core.quant.weight_matching import match_weights

    model = resnet8_sharing_a_bias(tmp_path / "shared.onnx")
    shutil.copy(RESNET8 / "labels_cifar10.txt", tmp_path / "labels_cifar10.txt")
    cal = tmp_path / "cal" / "airplane"
    cal.mkdir(parents=True)
    for f in sorted((CIFAR / "airplane").glob("*.jpg"))[:4]:
        shutil.copy(f, cal / f.name)
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, cal.parent, method="minmax")
    flat = tmp_path / "flat.onnx"
    onnx.save(comparable_float(model), str(flat))
    qdq = tmp_path / "qdq.onnx"
    make_int8(flat, latest_calibration(ws) / "ranges.json", qdq, "ort-cpu", keep_float=[])
    with caplog.at_level(logging.INFO):
        twins = match_weights(flat, qdq)
        caplog.clear()
        fewer = match_weights(model, qdq)
    assert len(fewer) < len(twins)
    assert not [r for r in caplog.records if r.pathname.endswith("qdq_loss_debug.py")]
    said = [r.getMessage() for r in caplog.records if r.name == "app.core.quant.weight_matching"]
    assert len(said) == 1 and "no float twin" in said[0], said
