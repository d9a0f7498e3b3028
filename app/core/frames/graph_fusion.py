"""Move per-frame pixel work into the graph, so a GPU gets 4x fewer bytes in and 14x fewer out.

`fuse_io` wraps a model so it takes the resized uint8 frame, already in the model's layout and
channel order (the Preprocessor's fused mode), and does the float conversion and scale/mean/std
itself. For a YOLOX raw-grid head it also reduces [N, A, 5+C] to [N, A, 6] (box offsets, obj *
best class score, class id) in the graph. On the H100 a 416x416 frame then crosses PCIe as
0.5 MB instead of 2 MB, and 85 KB comes back instead of 1.2 MB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.core.atomic import atomic_path
from app.core.model.spec import ModelSpec

FUSED_INPUT = "frame_u8"
FUSED_OUTPUT = "detections6"
FUSION_VERSION = 3
FUSED_NAME_MARK = ".fused-"  # a fused copy is named <model stem>.fused-<content key>.onnx


def _opset(model: onnx.ModelProto) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _dims(value: onnx.ValueInfoProto) -> list:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value.type.tensor_type.shape.dim
    ]


def _only_consumer(graph: onnx.GraphProto, tensor: str) -> onnx.NodeProto | None:
    users = [n for n in graph.node if tensor in n.input]
    return users[0] if len(users) == 1 else None


def _cast_to(node: onnx.NodeProto | None, elem: int) -> bool:
    return (
        node is not None
        and node.op_type == "Cast"
        and any(a.name == "to" and a.i == elem for a in node.attribute)
    )


def _elem_type(model: onnx.ModelProto, tensor: str) -> int | None:
    """Element type of an intermediate tensor, by ONNX shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    for value in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        if value.name == tensor:
            return value.type.tensor_type.elem_type
    return None


def fuse_io(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """A copy of `model` with preprocessing (and, for YOLOX raw heads, score reduction) inside.

    The new input is uint8 in the model's own layout and channel order (the Preprocessor's
    fused mode lays the frame out on the CPU, so the GPU does no transpose): one Cast, plus
    Mul/Add only when the model normalises. In an FP16 graph whose FP32 input went straight
    into a Cast to FP16, the frame is cast to FP16 directly and that Cast is dropped; likewise
    the score reduction runs on the FP16 head output, with one Cast to FP32 at the very end.
    Every kernel counts: the model is launch-bound on a GPU (about 3-4 us a kernel on an H100).
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    pre = spec.preprocess
    old_input = next(i for i in graph.input if i.name == spec.input_name)
    dims = _dims(old_input)
    graph.input.remove(old_input)
    graph.input.insert(0, helper.make_tensor_value_info(FUSED_INPUT, TensorProto.UINT8, dims))
    if old_input.type.tensor_type.elem_type == TensorProto.UINT8:
        # the model already takes uint8 frames (TFLite SSDs): only the input's name changes
        graph.node.insert(0, helper.make_node("Identity", [FUSED_INPUT], [spec.input_name]))
        return model

    first = _only_consumer(graph, spec.input_name)
    half = _cast_to(first, TensorProto.FLOAT16)
    elem, np_type = (TensorProto.FLOAT16, np.float16) if half else (TensorProto.FLOAT, np.float32)
    target = first.output[0] if half else spec.input_name  # what the model's nodes read
    if half:
        graph.node.remove(first)
    std = np.asarray(pre.std, np.float32)
    a = (pre.scale / std).astype(np.float32)  # per model channel (order applied on the CPU)
    b = (-np.asarray(pre.mean, np.float32) / std).astype(np.float32)
    nodes = []
    if np.all(a == 1.0) and np.all(b == 0.0):
        # raw 0..255 models (official YOLOX): the cast is all there is
        nodes.append(helper.make_node("Cast", [FUSED_INPUT], [target], to=elem))
    else:
        shape = [1, 3, 1, 1] if pre.layout == "NCHW" else [3]
        graph.initializer.extend(
            [
                numpy_helper.from_array(a.reshape(shape).astype(np_type), "fuse_scale"),
                numpy_helper.from_array(b.reshape(shape).astype(np_type), "fuse_shift"),
            ]
        )
        nodes.append(helper.make_node("Cast", [FUSED_INPUT], ["fuse_f"], to=elem))
        nodes.append(helper.make_node("Mul", ["fuse_f", "fuse_scale"], ["fuse_scaled"]))
        nodes.append(helper.make_node("Add", ["fuse_scaled", "fuse_shift"], [target]))
    for i, node in enumerate(nodes):
        graph.node.insert(i, node)
    if spec.postprocess.decoder == "yolox_raw":
        _fuse_yolox_scores(model, spec.postprocess.transposed)
    return model


def _fuse_yolox_scores(model: onnx.ModelProto, transposed: bool = False) -> None:
    """[N, A, 5+C] raw head (or [N, 5+C, A] when `transposed`) -> [N, A, 6]: box offsets,
    obj * best class score, class id."""
    graph = model.graph
    out = graph.output[0]
    dims = _dims(out)
    opset = _opset(model)
    raw, elem = out.name, TensorProto.FLOAT
    producer = next((n for n in graph.node if raw in n.output), None)
    if (
        _cast_to(producer, TensorProto.FLOAT)
        and not any(raw in n.input for n in graph.node)
        and _elem_type(model, producer.input[0]) == TensorProto.FLOAT16
    ):
        # an FP16 graph's output cast: reduce in FP16 (max/argmax exact, one rounding for the
        # product) and cast the 6 columns instead of all 85
        graph.node.remove(producer)
        raw, elem = producer.input[0], TensorProto.FLOAT16
    nodes = []
    if transposed:  # one transpose of the head, so the rest reads rows as for [N, A, 5+C]
        nodes.append(helper.make_node("Transpose", [raw], ["fuse_rows"], perm=[0, 2, 1]))
        raw, dims = "fuse_rows", [dims[0], dims[2], dims[1]]
    n_cls = dims[2] - 5 if isinstance(dims[2], int) else None
    if n_cls is not None:
        graph.initializer.append(
            numpy_helper.from_array(np.asarray([4, 1, n_cls], np.int64), "fuse_split")
        )
        if opset >= 13:
            split = helper.make_node(
                "Split", [raw, "fuse_split"], ["fuse_box", "fuse_obj", "fuse_cls"], axis=2
            )
        else:
            split = helper.make_node(
                "Split", [raw], ["fuse_box", "fuse_obj", "fuse_cls"], axis=2, split=[4, 1, n_cls]
            )
        nodes.append(split)
    else:  # class count unknown in the graph: three slices instead of one split
        consts = {"fuse_s0": [0], "fuse_s4": [4], "fuse_s5": [5], "fuse_end": [2**31 - 1]}
        consts["fuse_axis2"] = [2]
        graph.initializer.extend(
            numpy_helper.from_array(np.asarray(v, np.int64), k) for k, v in consts.items()
        )
        for name, lo, hi in (("box", "s0", "s4"), ("obj", "s4", "s5"), ("cls", "s5", "end")):
            nodes.append(
                helper.make_node(
                    "Slice", [raw, f"fuse_{lo}", f"fuse_{hi}", "fuse_axis2"], [f"fuse_{name}"]
                )
            )
    if opset >= 18:
        if "fuse_axis2" not in {t.name for t in graph.initializer}:
            axis = numpy_helper.from_array(np.asarray([2], np.int64), "fuse_axis2")
            graph.initializer.append(axis)
        nodes.append(
            helper.make_node("ReduceMax", ["fuse_cls", "fuse_axis2"], ["fuse_cmax"], keepdims=1)
        )
    else:
        nodes.append(
            helper.make_node("ReduceMax", ["fuse_cls"], ["fuse_cmax"], axes=[2], keepdims=1)
        )
    concat_out = FUSED_OUTPUT if elem == TensorProto.FLOAT else "fuse_det16"
    nodes += [
        helper.make_node("ArgMax", ["fuse_cls"], ["fuse_cid_i"], axis=2, keepdims=1),
        helper.make_node("Cast", ["fuse_cid_i"], ["fuse_cid"], to=elem),
        helper.make_node("Mul", ["fuse_obj", "fuse_cmax"], ["fuse_score"]),
        helper.make_node("Concat", ["fuse_box", "fuse_score", "fuse_cid"], [concat_out], axis=2),
    ]
    if elem != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [concat_out], [FUSED_OUTPUT], to=TensorProto.FLOAT))
    graph.node.extend(nodes)
    graph.output.remove(out)
    graph.output.append(
        helper.make_tensor_value_info(FUSED_OUTPUT, TensorProto.FLOAT, [dims[0], dims[1], 6])
    )


def fused_model_path(model_path: Path, spec: ModelSpec, folder: Path) -> Path:
    """Write (once) the fused copy of `model_path` into `folder`, keyed by file and settings."""
    from app.core.model.files import file_sha256
    from app.core.model.workspace import cache_key

    key = cache_key(
        "fuse",
        FUSION_VERSION,
        file_sha256(model_path),
        spec.preprocess_key(),
        spec.postprocess.decoder,
    )
    target = Path(folder) / f"{Path(model_path).stem}{FUSED_NAME_MARK}{key}.onnx"
    if not target.is_file():
        fused = fuse_io(onnx.load(str(model_path)), spec)
        with atomic_path(target) as part:
            onnx.save(fused, str(part))
            onnx.checker.check_model(str(part))
    return target
