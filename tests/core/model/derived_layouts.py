"""Other detectors' output layouts made from the real YOLOX-Nano COCO weights by appending ONNX ops.

Every layout carries the same real weights, so it must find what the raw model finds:
- `yolov8`: [1, 84, 3549] cx, cy, w, h (input pixels), 80 class scores (obj * cls), no objectness
- `yolov5`: [1, 3549, 85] cx, cy, w, h, objectness, 80 class scores (decoded YOLOX)
- `end2end`: [1, 100, 6] x1, y1, x2, y2, score, class after NMS, zero-padded (Ultralytics nms=True)
- `efficient_nms`: num_dets [1, 1], det_boxes [1, 100, 4], det_scores [1, 100], det_classes
- `tf_od`: TensorFlow OD API names: detection_boxes (ymin, xmin, ymax, xmax normalised),
  detection_classes (1-based, float), detection_scores, num_detections, raw_detection_scores
- `detr`: [1, 100, 84] cx, cy, w, h normalised + 80 class probabilities (RT-DETR style)
- `detr_logits`: boxes [1, 100, 4] and logits [1, 100, 80] as separate outputs (DETR style)
- `yolov8_seg`, `yolov5_seg`: those two with 32 mask coefficients per row and a prototypes
  output [1, 32, 104, 104] (Ultralytics' -seg exports)
- `boxes_scores`: boxes [1, 3549, 4] x1, y1, x2, y2 (input pixels) and scores [1, 3549, 80]
  before NMS (YOLO-NAS, DAMO-YOLO); `boxes_scores_t`: scores [1, 80, 3549] (PP-YOLOE)
- `batch_rows`: one 2-D output "output" [K, 7] of image index, x1, y1, x2, y2, class, score after
  NMS (YOLOv7's end-to-end export for ONNX Runtime); `batch_rows_nas`: the same with score, class
  (YOLO-NAS's flat format, output "graph2_flat_predictions")
- `torchvision`: one image [3, 416, 416] in (no batch axis), boxes [n, 4] x1, y1, x2, y2 (input
  pixels), labels [n] int64 (COCO category ids, 1 = person) and scores [n] out after NMS, no
  metadata (torchvision's detectors)
- `ppyoloe` (PaddleDetection, NMS excluded): image in, named `image`, beside `im_shape` and
  `scale_factor` [N, 2] inputs (the original picture's size; the boxes are divided by the
  scale); boxes [1, 3549, 4] xyxy and scores [1, 80, 3549] out
- `ppdet_nms` (PaddleDetection with its NMS): the same inputs; rows [n, 6] of class, score, x1,
  y1, x2, y2 (`multiclass_nms3_0.tmp_0`) and a count per image [1] int32 (`..._tmp_2`) out
- `rtdetr` (RT-DETR's deploy export): `images` beside `orig_target_sizes` [N, 2] int64 (width,
  height; the 0..1 boxes are multiplied by it); labels [1, 100] int64, boxes [1, 100, 4] xyxy,
  scores [1, 100] out. Neither opens as it is: `adapt` computes the size inputs (SIZE_INPUTS)
- `mmdeploy`: dets [1, n, 5] x1, y1, x2, y2 (input pixels), score and labels [1, n] int64 after
  NMS (MMDetection models exported by MMDeploy for ONNX Runtime); `mmdeploy_seg` adds masks
  [1, n, 28, 28] (its instance-segmentation exports)

Each takes Ultralytics' input (RGB, 0..1; an adapter turns it into YOLOX's BGR 0..255) and carries
Ultralytics-style metadata (names, imgsz, stride, task), as such exports do. With `uint8_nhwc` the
input is instead uint8 RGB [N, 416, 416, 3] with a dynamic batch. The in-graph NMS is class-aware
(boxes offset by class) at IoU 0.65 and score 0.001, keeping 100: the app's COCO evaluation
settings, so the mAP of every layout can be compared with the raw model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.core.frames.postprocess import yolox_grid
from app.core.model.graph_inputs import rename_reads
from tests.assets import YOLOX_ONNX

LAYOUTS = (
    "yolov8",
    "yolov5",
    "end2end",
    "efficient_nms",
    "tf_od",
    "detr",
    "detr_logits",
    "yolov8_seg",
    "yolov5_seg",
    "boxes_scores",
    "boxes_scores_t",
    "batch_rows",
    "batch_rows_nas",
    "mmdeploy",
    "mmdeploy_seg",
)
SIZE_INPUTS = ("ppyoloe", "ppdet_nms", "rtdetr")  # built here too, opened through `adapt`
MASK_COEFFICIENTS = 32
SIZE, ANCHORS, CLASSES, KEEP = 416, 3549, 80, 100
NMS_IOU, NMS_SCORE = 0.65, 0.001
COCO80 = Path(__file__).resolve().parents[3] / "resources" / "labels" / "coco80.txt"
# COCO's category id of each of its 80 classes (person 1 ... stop sign 13 ... toothbrush 90):
# the app's coco90.txt lists them as "<id - 1>  <name>"
COCO_CATEGORY_IDS = np.array(
    [int(line.split()[0]) + 1 for line in COCO80.with_name("coco90.txt").read_text().splitlines()]
)


class _Graph:
    """Appends nodes and constants to a graph with unique names."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph, self.n = graph, 0

    def const(self, value: np.ndarray) -> str:
        self.n += 1
        name = f"derived_c{self.n}"
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        self.n += 1
        outs = [f"derived_{op_type.lower()}{self.n}_{i}" for i in range(n_out)]
        self.graph.node.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs

    def one(self, op_type: str, inputs: list[str], **attrs) -> str:
        return self.op(op_type, inputs, **attrs)[0]


def _input_adapter(g: _Graph, uint8_nhwc: bool, unbatched: bool = False) -> None:
    """Replace YOLOX's BGR 0..255 NCHW input by Ultralytics' RGB 0..1 (or uint8 RGB NHWC; or
    RGB 0..1 [3, H, W], one image without a batch axis, as torchvision's detectors take)."""
    old = g.graph.input[0]
    g.graph.input.remove(old)
    for node in g.graph.node:
        node.input[:] = ["yolox_bgr" if i == old.name else i for i in node.input]
    body = list(g.graph.node)
    g.graph.ClearField("node")  # the adapter's nodes come first (ONNX wants topological order)
    if uint8_nhwc:
        x = helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", SIZE, SIZE, 3])
        nchw = g.one(
            "Transpose", [g.one("Cast", ["images"], to=TensorProto.FLOAT)], perm=[0, 3, 1, 2]
        )
    elif unbatched:
        x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [3, SIZE, SIZE])
        one = g.one("Unsqueeze", ["images"], axes=[0])
        nchw = g.one("Mul", [one, g.const(np.float32(255.0))])
    else:
        x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])
        nchw = g.one("Mul", ["images", g.const(np.float32(255.0))])
    flip = g.const(np.array([2, 1, 0], np.int64))
    g.graph.node.append(helper.make_node("Gather", [nchw, flip], ["yolox_bgr"], axis=1))
    g.graph.node.extend(body)
    g.graph.input.insert(0, x)


def _decoded(g: _Graph, raw: str) -> tuple[str, str, str, str]:
    """(cxcywh [A, 4] input pixels, obj [A, 1], cls [A, 80], obj*cls [A, 80]) from the grid."""
    grid, stride = yolox_grid(SIZE, SIZE, (8, 16, 32))
    rows = g.one("Squeeze", [raw], axes=[0])

    def cols(a: int, b: int) -> str:
        starts, ends, axes = (g.const(np.array([v], np.int64)) for v in (a, b, 1))
        return g.one("Slice", [rows, starts, ends, axes])

    s = g.const(stride.astype(np.float32))
    xy = g.one("Mul", [g.one("Add", [cols(0, 2), g.const(grid.astype(np.float32))]), s])
    wh = g.one("Mul", [g.one("Exp", [cols(2, 4)]), s])
    obj, cls = cols(4, 5), cols(5, 5 + CLASSES)
    return g.one("Concat", [xy, wh], axis=1), obj, cls, g.one("Mul", [obj, cls])


def _nms(g: _Graph, cxcywh: str, probs: str) -> tuple[str, str, str, str, str]:
    """Class-aware NMS, best first: (kept indices [n], boxes xyxy [n, 4], scores [n],
    classes [n] float, count [1] int64)."""
    xy = g.one("Slice", [cxcywh, *(g.const(np.array([v], np.int64)) for v in (0, 2, 1))])
    wh = g.one("Slice", [cxcywh, *(g.const(np.array([v], np.int64)) for v in (2, 4, 1))])
    half = g.one("Mul", [wh, g.const(np.float32(0.5))])
    xyxy = g.one("Concat", [g.one("Sub", [xy, half]), g.one("Add", [xy, half])], axis=1)
    score = g.one("ReduceMax", [probs], axes=[1], keepdims=0)
    cls = g.one("Cast", [g.one("ArgMax", [probs], axis=1, keepdims=1)], to=TensorProto.FLOAT)
    shifted = g.one("Add", [xyxy, g.one("Mul", [cls, g.const(np.float32(4096.0))])])
    sel = g.one(
        "NonMaxSuppression",
        [
            g.one("Unsqueeze", [shifted], axes=[0]),
            g.one("Unsqueeze", [g.one("Unsqueeze", [score], axes=[0])], axes=[0]),
            g.const(np.array([KEEP], np.int64)),
            g.const(np.array([NMS_IOU], np.float32)),
            g.const(np.array([NMS_SCORE], np.float32)),
        ],
    )
    idx = g.one(
        "Squeeze", [g.one("Gather", [sel, g.const(np.array([2], np.int64))], axis=1)], axes=[1]
    )
    # NonMaxSuppression lists boxes by score within a class: sort once more, best first
    kept_scores = g.one("Gather", [score, idx])
    count = g.one("Shape", [idx])
    _, order = g.op("TopK", [kept_scores, count], n_out=2, axis=0)
    idx = g.one("Gather", [idx, order])
    boxes = g.one("Gather", [xyxy, idx])
    return (
        idx,
        boxes,
        g.one("Gather", [score, idx]),
        g.one("Squeeze", [g.one("Gather", [cls, idx])], axes=[1]),
        count,
    )


def _mask_head(g: _Graph, cls: str) -> str:
    """[A, 32] stand-in mask coefficients, spread like real ones (-5..15): the first 32 class
    columns scaled, so a reader that takes them for class scores sees scores above 1."""
    first = g.one("Slice", [cls, *(g.const(np.array([v], np.int64)) for v in (0, 32, 1))])
    return g.one(
        "Add", [g.one("Mul", [first, g.const(np.float32(20.0))]), g.const(np.float32(-5.0))]
    )


def _padded(g: _Graph, rows: str, width: int, fill: float = 0.0) -> str:
    """[n, width] rows padded with `fill` to [1, KEEP, width]."""
    pad = g.const(np.full((KEEP, width), fill, np.float32))
    both = g.one("Concat", [rows, pad], axis=0)
    first = g.one("Slice", [both, *(g.const(np.array([v], np.int64)) for v in (0, KEEP, 0))])
    return g.one("Unsqueeze", [first], axes=[0])


def _output(
    g: _Graph, tensor: str, name: str, shape: list[int], elem: int = TensorProto.FLOAT
) -> None:
    g.graph.node.append(helper.make_node("Identity", [tensor], [name]))
    g.graph.output.append(helper.make_tensor_value_info(name, elem, shape))


def build_layout(
    kind: str,
    out_path: Path,
    *,
    uint8_nhwc: bool = False,
    meta: bool = True,  # (ppyoloe, rtdetr: never: those exporters write none)
    classes: list[int] | None = None,
) -> Path:
    """Write the `kind` layout of the real YOLOX-Nano to `out_path` (see module doc).
    `classes` (yolov8 only): keep these COCO classes, e.g. two for a [1, 6, N] output."""
    model = onnx.load(str(YOLOX_ONNX))
    g = _Graph(model.graph)
    raw = "yolox_head"  # YOLOX calls it "output": free that name for the layouts' own outputs
    for node in model.graph.node:
        node.output[:] = [raw if o == model.graph.output[0].name else o for o in node.output]
    model.graph.ClearField("output")
    cxcywh, obj, cls, probs = _decoded(g, raw)
    kept = list(classes or [])  # (the NMS branch below has a `classes` tensor of its own)
    n_cls = len(kept) or CLASSES
    if kept:
        probs = g.one("Gather", [probs, g.const(np.array(kept, np.int64))], axis=1)
    seg = kind in ("yolov8_seg", "yolov5_seg")  # Ultralytics' coefficients and prototypes
    coefs = [_mask_head(g, cls)] if seg else []
    extra = MASK_COEFFICIENTS if seg else 0
    if kind in ("yolov5", "yolov5_seg"):
        _output(
            g,
            g.one("Unsqueeze", [g.one("Concat", [cxcywh, obj, cls, *coefs], axis=1)], axes=[0]),
            "output0",
            [1, ANCHORS, 5 + CLASSES + extra],
        )
    elif kind in ("yolov8", "yolov8_seg"):
        rows = g.one("Concat", [cxcywh, probs, *coefs], axis=1)
        _output(
            g,
            g.one("Unsqueeze", [g.one("Transpose", [rows], perm=[1, 0])], axes=[0]),
            "output0",
            [1, 4 + n_cls + extra, ANCHORS],
        )
    elif kind in ("boxes_scores", "boxes_scores_t", "ppyoloe"):
        xy = g.one("Slice", [cxcywh, *(g.const(np.array([v], np.int64)) for v in (0, 2, 1))])
        wh = g.one("Slice", [cxcywh, *(g.const(np.array([v], np.int64)) for v in (2, 4, 1))])
        half = g.one("Mul", [wh, g.const(np.float32(0.5))])
        xyxy = g.one("Concat", [g.one("Sub", [xy, half]), g.one("Add", [xy, half])], axis=1)
        if kind == "ppyoloe":  # PaddleDetection divides by (scale_x, scale_y, scale_x, scale_y)
            yx = g.one("Gather", ["scale_factor", g.const(np.array([1, 0, 1, 0]))], axis=1)
            xyxy = g.one("Div", [xyxy, yx])
        _output(g, g.one("Unsqueeze", [xyxy], axes=[0]), "boxes", [1, ANCHORS, 4])
        if kind in ("boxes_scores_t", "ppyoloe"):  # PP-YOLOE's [1, C, N]
            scores = g.one("Transpose", [probs], perm=[1, 0])
            _output(g, g.one("Unsqueeze", [scores], axes=[0]), "scores", [1, n_cls, ANCHORS])
        else:  # YOLO-NAS, DAMO-YOLO: [1, N, C]
            _output(g, g.one("Unsqueeze", [probs], axes=[0]), "scores", [1, ANCHORS, n_cls])
    else:
        idx, boxes, scores, classes, count = _nms(g, cxcywh, probs)
        col = lambda t: g.one("Unsqueeze", [t], axes=[1])  # noqa: E731
        if kind == "batch_rows":  # YOLOv7's name for it, which official YOLOX's preset shares
            index = g.one("Mul", [col(scores), g.const(np.float32(0.0))])
            rows = g.one("Concat", [index, boxes, col(classes), col(scores)], axis=1)
            _output(g, rows, "output", ["detections", 7])
        elif kind == "batch_rows_nas":  # YOLO-NAS: score before class
            index = g.one("Mul", [col(scores), g.const(np.float32(0.0))])
            rows = g.one("Concat", [index, boxes, col(scores), col(classes)], axis=1)
            _output(g, rows, "graph2_flat_predictions", ["detections", 7])
        elif kind in ("mmdeploy", "mmdeploy_seg"):
            dets = g.one("Concat", [boxes, col(scores)], axis=1)
            _output(g, g.one("Unsqueeze", [dets], axes=[0]), "dets", [1, "n", 5])
            labels = g.one("Cast", [classes], to=TensorProto.INT64)
            _output(
                g, g.one("Unsqueeze", [labels], axes=[0]), "labels", [1, "n"], TensorProto.INT64
            )
            if kind == "mmdeploy_seg":  # a stand-in mask per detection, [1, n, 28, 28]
                sizes = [g.const(np.array(v, np.int64)) for v in ([1], [28, 28])]
                shape = g.one("Concat", [sizes[0], count, sizes[1]], axis=0)
                blank = g.const(np.full((1, 1, 28, 28), 0.75, np.float32))  # the whole box
                _output(g, g.one("Expand", [blank, shape]), "masks", [1, "n", 28, 28])
        elif kind == "ppdet_nms":  # boxes divided by (scale_x, scale_y, scale_x, scale_y)
            yx = g.one("Gather", ["scale_factor", g.const(np.array([1, 0, 1, 0]))], axis=1)
            rows = g.one("Concat", [col(classes), col(scores), g.one("Div", [boxes, yx])], axis=1)
            _output(g, rows, "multiclass_nms3_0.tmp_0", ["n", 6])
            n = g.one("Cast", [count], to=TensorProto.INT32)
            _output(g, n, "multiclass_nms3_0.tmp_2", [1], TensorProto.INT32)
        elif kind == "rtdetr":  # 0..1 boxes times (width, height, width, height)
            sizes = g.one("Cast", ["orig_target_sizes"], to=TensorProto.FLOAT)
            whwh = g.one("Gather", [sizes, g.const(np.array([0, 1, 0, 1]))], axis=1)
            unit = g.one("Div", [boxes, g.const(np.float32(SIZE))])
            _output(g, _padded(g, g.one("Mul", [unit, whwh]), 4), "boxes", [1, KEEP, 4])
            sq = lambda t: g.one("Squeeze", [t], axes=[2])  # noqa: E731
            labels = g.one("Cast", [sq(_padded(g, col(classes), 1))], to=TensorProto.INT64)
            _output(g, labels, "labels", [1, KEEP], TensorProto.INT64)
            _output(g, sq(_padded(g, col(scores), 1)), "scores", [1, KEEP])
        elif kind == "torchvision":  # labels are COCO category ids (1 = person; 0 background)
            _output(g, boxes, "boxes", ["n", 4])
            ids = g.one("Cast", [classes], to=TensorProto.INT64)
            labels = g.one("Gather", [g.const(COCO_CATEGORY_IDS), ids])
            _output(g, labels, "labels", ["n"], TensorProto.INT64)
            _output(g, scores, "scores", ["n"])
        elif kind == "end2end":
            rows = g.one("Concat", [boxes, col(scores), col(classes)], axis=1)
            _output(g, _padded(g, rows, 6), "output0", [1, KEEP, 6])
        elif kind == "efficient_nms":
            num = g.one("Cast", [g.one("Unsqueeze", [count], axes=[0])], to=TensorProto.INT32)
            _output(g, num, "num_dets", [1, 1], TensorProto.INT32)
            _output(g, _padded(g, boxes, 4), "det_boxes", [1, KEEP, 4])
            sq = lambda t: g.one("Squeeze", [t], axes=[2])  # noqa: E731
            _output(g, sq(_padded(g, col(scores), 1)), "det_scores", [1, KEEP])
            cls_i = g.one("Cast", [sq(_padded(g, col(classes), 1))], to=TensorProto.INT32)
            _output(g, cls_i, "det_classes", [1, KEEP], TensorProto.INT32)
        elif kind == "tf_od":
            yxyx = g.one("Gather", [boxes, g.const(np.array([1, 0, 3, 2], np.int64))], axis=1)
            yxyx = g.one("Div", [yxyx, g.const(np.float32(SIZE))])
            _output(g, _padded(g, yxyx, 4), "detection_boxes", [1, KEEP, 4])
            sq = lambda t: g.one("Squeeze", [t], axes=[2])  # noqa: E731
            one_based = g.one("Add", [classes, g.const(np.float32(1.0))])
            _output(g, sq(_padded(g, col(one_based), 1)), "detection_classes", [1, KEEP])
            _output(g, sq(_padded(g, col(scores), 1)), "detection_scores", [1, KEEP])
            _output(g, g.one("Cast", [count], to=TensorProto.FLOAT), "num_detections", [1])
            _output(
                g,
                g.one("Unsqueeze", [probs], axes=[0]),
                "raw_detection_scores",
                [1, ANCHORS, CLASSES],
            )
        else:
            norm = g.one("Div", [g.one("Gather", [cxcywh, idx]), g.const(np.float32(SIZE))])
            p = g.one("Gather", [probs, idx])
            if kind == "detr":
                _output(
                    g,
                    _padded(g, g.one("Concat", [norm, p], axis=1), 4 + CLASSES),
                    "output0",
                    [1, KEEP, 4 + CLASSES],
                )
            else:  # separate boxes and logits (inverse sigmoid); padding queries score ~0
                clipped = g.one(
                    "Clip", [p, g.const(np.float32(1e-6)), g.const(np.float32(1 - 1e-6))]
                )
                odds = g.one("Div", [clipped, g.one("Sub", [g.const(np.float32(1.0)), clipped])])
                _output(g, _padded(g, norm, 4), "pred_boxes", [1, KEEP, 4])
                _output(
                    g,
                    _padded(g, g.one("Log", [odds]), CLASSES, -20.0),
                    "pred_logits",
                    [1, KEEP, CLASSES],
                )
    if seg:  # Ultralytics' second output: mask prototypes at a quarter of the input size
        # (minus the image's brightness: the stand-in coefficients sum below 0 on nearly every
        # row, so each mask covers its box's lit pixels)
        protos = g.one(
            "AveragePool",
            [g.one("ReduceMean", [model.graph.input[0].name], axes=[1], keepdims=1)],
            kernel_shape=[4, 4],
            strides=[4, 4],
        )
        protos = g.one("Neg", [protos])
        reps = g.const(np.array([1, MASK_COEFFICIENTS, 1, 1], np.int64))
        q = SIZE // 4
        _output(g, g.one("Tile", [protos, reps]), "output1", [1, MASK_COEFFICIENTS, q, q])
    _input_adapter(g, uint8_nhwc, unbatched=kind == "torchvision")
    if kind in ("ppyoloe", "ppdet_nms"):  # PaddleDetection's names; im_shape taken, unused
        rename_reads(model.graph, "images", "image")
        model.graph.input[0].name = "image"
        for name in ("im_shape", "scale_factor"):
            vi = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 2])
            model.graph.input.append(vi)
    elif kind == "rtdetr":
        vi = helper.make_tensor_value_info("orig_target_sizes", TensorProto.INT64, ["batch", 2])
        model.graph.input.append(vi)
    if meta and kind not in ("torchvision", *SIZE_INPUTS):
        names = [n.strip() for n in COCO80.read_text().splitlines() if n.strip()]
        names = [names[c] for c in kept] if kept else names
        props = {
            "description": f"Ultralytics-style {kind} export of YOLOX-Nano COCO (test layout)",
            "names": repr(dict(enumerate(names))),
            "imgsz": f"[{SIZE}, {SIZE}]",
            "stride": "32",
            "task": "detect",
        }
        onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path
