"""`ModelSpec`: what a model expects and produces (data only; `inspection` builds one).

Built by `app.core.model.inspection` from the ONNX graph, sidecar files and presets; every guess
is recorded in `notes` so the user can see and correct it.
The spec is saved in the workspace so calibration, quantization and inference share one
preprocessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.core.atomic import write_json
from app.core.errors import UserError
from app.core.safe_json import load_json

RESIZE_MODES = ("letterbox", "short_side_crop", "resize_crop", "stretch")
DECODERS = (
    "yolox_raw",  # YOLOX [1, A, 5+C] grid offsets, decoded here
    "boxes_xywh_cls_prob",  # tutorial export [1, N, 6]: x0, y0, w, h, class, prob
    "boxes_labels_scores",  # separate boxes / labels / scores outputs
    "boxes_scores",  # boxes [1, N, 4] x1, y1, x2, y2 + class scores [1, N, C] (YOLO-NAS, PP-YOLOE)
    "yolov8",  # Ultralytics YOLOv8/YOLO11 [1, 4+C, N]: cx, cy, w, h, class scores
    "yolov5",  # YOLOv5/v7, decoded YOLOX [1, N, 5+C]: cx, cy, w, h, objectness, class scores
    "end2end",  # [1, K, 6]: x1, y1, x2, y2, score, class (Ultralytics nms=True, YOLOv10)
    "batch_rows",  # [K, 7]: image index, x1, y1, x2, y2, class, score (YOLOv7 --end2end, ORT)
    # or score, class (YOLO-NAS's flat format; Postprocess.score_first)
    "class_score_rows",  # [K, 6] class, score, x1, y1, x2, y2 + counts [N] (PaddleDetection NMS)
    "efficient_nms",  # num_dets, det_boxes (x1, y1, x2, y2), det_scores, det_classes
    "tf_od",  # TensorFlow OD / TFLite SSD: boxes (ymin, xmin, ymax, xmax), classes, scores, count
    "detr",  # DETR / RT-DETR: cx, cy, w, h normalised, class logits or probabilities
    "classifier",
)
INPUT_DTYPES = ("float32", "uint8")


@dataclass
class Preprocess:
    """How a BGR uint8 frame becomes the model's input tensor.

    value = (pixel * scale - mean) / std, per channel in `color` order.
    """

    resize: str = "letterbox"
    size: list[int] = field(default_factory=lambda: [416, 416])  # [height, width] fed to the model
    short_side: int | None = None  # short_side_crop on a dynamic model: per-image shape
    stride: int = 32
    color: str = "BGR"
    scale: float = 1.0
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    pad_value: float = 114.0
    crop_fraction: float = 1.0
    layout: str = "NCHW"
    pad_center: bool = (
        False  # letterbox: centre the image (Ultralytics) instead of top-left (YOLOX)
    )
    input_dtype: str = "float32"  # "uint8": the resized frame goes in as is (no scale/mean/std)

    def validate(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise UserError(f"unknown resize mode '{self.resize}'; use one of {RESIZE_MODES}")
        if self.color not in ("BGR", "RGB"):
            raise UserError(f"colour order must be BGR or RGB, not '{self.color}'")
        if self.layout not in ("NCHW", "NHWC"):
            raise UserError(f"layout must be NCHW or NHWC, not '{self.layout}'")
        if len(self.size) != 2 or min(self.size) < 8 or max(self.size) > 8192:
            raise UserError(f"input size {self.size} must be [height, width] between 8 and 8192")
        if any(s == 0 for s in self.std) or len(self.std) != 3 or len(self.mean) != 3:
            raise UserError("mean and std need three values each, std non-zero")
        if not 0.1 <= self.crop_fraction <= 1.0:
            raise UserError("crop fraction must be between 0.1 and 1.0")
        if self.input_dtype not in INPUT_DTYPES:
            raise UserError(f"input type must be one of {INPUT_DTYPES}, not '{self.input_dtype}'")
        if self.input_dtype == "uint8" and (
            self.scale != 1.0 or any(self.mean) or any(s != 1.0 for s in self.std)
        ):
            raise UserError("a uint8 input takes pixels as they are: scale 1, mean 0, std 1")


NEW_PREPROCESS_DEFAULTS: dict[str, Any] = {"pad_center": False, "input_dtype": "float32"}


@dataclass
class Postprocess:
    """How raw outputs become detections or top-k labels."""

    decoder: str = "classifier"
    strides: list[int] = field(default_factory=lambda: [8, 16, 32])
    apply_softmax: bool = False
    boxes_normalized: bool = False
    conf: float = 0.3
    iou: float = 0.45
    topk: int = 5
    max_det: int = 300
    transposed: bool = False  # yolov8/yolov5 output laid out [1, features, anchors]
    score_activation: str = "none"  # detr: "sigmoid" or "softmax" (last class = no object)
    class_offset: int = 0  # subtracted from the model's class ids (1 for 1-based ids)
    # yolov8/yolov5 segmentation heads: trailing mask-coefficient columns (32) for the mask
    # prototypes output (outputs["prototypes"]; app.core.frames.masks)
    mask_coefficients: int = 0
    # batch_rows: confidence in column 5 and class in 6 (YOLO-NAS's flat format), not class
    # then score (YOLOv7's end-to-end export)
    score_first: bool = False
    outputs: dict[str, str] = field(default_factory=dict)  # role (boxes, scores, ...) -> output


@dataclass
class ModelSpec:
    path: str
    sha256: str
    task: str  # "detection" | "classification"
    input_name: str
    input_shape: list[int | str]
    dynamic_size: bool
    outputs: list[dict[str, Any]]
    preprocess: Preprocess
    postprocess: Postprocess
    labels: list[str] = field(default_factory=list)
    colors: list[list[int]] = field(default_factory=list)  # RGB 0..255 per label
    preset: str = ""
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    # serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        data["preprocess"] = Preprocess(**data["preprocess"])
        data["postprocess"] = Postprocess(**data["postprocess"])
        return cls(**data)

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> ModelSpec:
        try:
            return cls.from_dict(load_json(path))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UserError(
                f"{path}: not a valid model spec ({exc}); delete it to re-inspect"
            ) from exc

    # helpers ---------------------------------------------------------------------------------
    def preprocess_key(self) -> dict[str, Any]:
        """Everything that changes the input tensor: part of every cache key. Fields added later
        are left out at their defaults, so specs saved before them keep their cache keys."""
        key = asdict(self.preprocess)
        for name, default in NEW_PREPROCESS_DEFAULTS.items():
            if key.get(name) == default:
                key.pop(name)
        return key

    def label(self, class_id: int) -> str:
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return f"class {class_id}"

    def color(self, class_id: int) -> tuple[int, int, int]:
        """BGR colour for drawing."""
        if 0 <= class_id < len(self.colors):
            r, g, b = self.colors[class_id]
            return (int(b), int(g), int(r))
        return palette_color(class_id)


def palette_color(i: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour for class `i` when no colormap is given."""
    hue = (i * 0.618033988749895) % 1.0
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return (int(b * 255), int(g * 255), int(r * 255))
