"""Copies of the real classifiers that no preset, metadata or sidecar describes.

Each copy's hash differs from the original (a metadata prop is added and the graph re-saved),
its input is renamed (as another exporter would name it: the graph-structure match of presets
then fails too) and it is written alone into its own folder (no labels, no norm_stats), so
whatever preprocessing the app ends up with was found, not looked up. `resaved` keeps the
input's name: a re-export that presets still recognise by structure.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from tests.assets import MODELS

RESNET8_ONNX = MODELS / "resnet8-cifar10" / "resnet8_cifar10.onnx"
EFFICIENTNET_ONNX = MODELS / "efficientnet-lite0-imagenet" / "efficientnet_lite0.onnx"


def _save(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    # a prop no reader knows: only the file's hash changes
    model.metadata_props.append(onnx.StringStringEntryProto(key="copied_by", value="tests"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    onnx.save(model, str(path))
    return path


def _rename_input(model: onnx.ModelProto, new_name: str) -> None:
    old = model.graph.input[0].name
    for node in model.graph.node:
        node.input[:] = [new_name if i == old else i for i in node.input]
    model.graph.input[0].name = new_name


def resaved(source: Path, folder: Path) -> Path:
    """`source` re-saved with another hash into `folder`, without its sidecars."""
    return _save(onnx.load(str(source)), folder, f"resaved_{source.name}")


def unknown_copy(source: Path, folder: Path) -> Path:
    """`source` with its input renamed and another hash, alone in `folder`."""
    model = onnx.load(str(source))
    _rename_input(model, "pixels")
    return _save(model, folder, f"unknown_{source.name}")


def div255_resnet8(folder: Path) -> Path:
    """ResNet-8 wrapped to take /255 pixels: a Mul by 255 in front of its raw 0..255 input, so
    the right preprocessing of the wrapped model is x / 255."""
    model = onnx.load(str(RESNET8_ONNX))
    graph = model.graph
    old = graph.input[0]
    new_name = "pixels_0_1"
    for node in graph.node:
        node.input[:] = [new_name + "_x255" if i == old.name else i for i in node.input]
    graph.initializer.append(helper.make_tensor("k255", TensorProto.FLOAT, [], [255.0]))
    graph.node.insert(0, helper.make_node("Mul", [new_name, "k255"], [new_name + "_x255"]))
    shape = [d.dim_param or d.dim_value for d in old.type.tensor_type.shape.dim]
    graph.input.remove(old)
    graph.input.insert(0, helper.make_tensor_value_info(new_name, TensorProto.FLOAT, shape))
    onnx.checker.check_model(model)
    return _save(model, folder, "resnet8_div255.onnx")
