"""Real workspaces several test modules build the same way."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx

from app.core.model.inspection import inspect_model
from app.core.model.spec import ModelSpec
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.graph_rules import name_nodes
from app.core.quant.quantize import make_int8, quantize
from app.core.quant.recipe import stem_nodes
from tests.assets import CIFAR, COCO_DEV64, IMAGES, RESNET8


def resnet8_int8_workspace(root: Path, per_class: int = 5) -> Workspace:
    """ResNet-8 with an INT8 variant from a MinMax calibration on `per_class` CIFAR photos of
    each class (copied under `root/cal`), its workspace in `root/ws`."""
    cal = root / "cal"
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        (cal / cls.name).mkdir(parents=True)
        for f in sorted(cls.glob("*.jpg"))[:per_class]:
            shutil.copy(f, cal / cls.name / f.name)
    ws = Workspace.for_model(inspect_model(RESNET8), root / "ws")
    calibrate(ws, cal, method="minmax")
    quantize(ws, precisions=("int8",))
    return ws


def copy_photos(dst: Path, count: int, src: Path = IMAGES / "coco-train128" / "images") -> Path:
    """The first `count` .jpg photos of `src` (sorted by name) copied into `dst`; `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.jpg"))[:count]:
        shutil.copy(path, dst / path.name)
    return dst


def minmax_workspace(tmp_path_factory, spec: ModelSpec, count: int = 8) -> Workspace:
    """`spec`'s workspace, calibrated (MinMax) on the first `count` coco-train128 photos copied
    into a fresh temporary folder; for module fixtures (`tmp_path_factory`)."""
    folder = copy_photos(tmp_path_factory.mktemp("calib"), count)
    ws = Workspace.for_model(spec, tmp_path_factory.mktemp("ws"))
    calibrate(ws, folder, method="minmax")
    return ws


def copy_labelled_dev64(root: Path, count: int) -> Path:
    """The first `count` coco-val-dev64 photos (sorted by name) in `root/images`, with their
    YOLO labels in `root/labels`; `root`."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    for photo in sorted((COCO_DEV64 / "images").glob("*.jpg"))[:count]:
        shutil.copy(photo, root / "images" / photo.name)
        label = COCO_DEV64 / "labels" / f"{photo.stem}.txt"
        if label.is_file():
            shutil.copy(label, root / "labels" / label.name)
    return root


def add_stem_only_int8(ws: Workspace, name: str = "int8-stem") -> str:
    """An ort-cpu INT8 variant from the workspace's latest calibration with only the stem blocks
    float, SiLUs quantized and the calibrated ranges as they are (the default before sensitive
    blocks, fused SiLUs and range floors): one that visibly disagrees with FP32 on YOLOX."""
    spec = ws.spec()
    stem = stem_nodes(name_nodes(onnx.load(spec.path)))
    ranges = latest_calibration(ws) / "ranges.json"
    meta = make_int8(
        spec.path,
        ranges,
        ws.variant_path(name),
        "ort-cpu",
        stem,
        placement="qlinear-silu",
        range_floors=False,
    )
    ws.record_variant(name, {"precision": "int8", "target": "ort-cpu", **meta})
    return name
