"""Space-to-depth folded into the convolution that reads it (YOLOX's and YOLOv5's "Focus").

A Focus stem slices the image into its four pixel phases (x[..., 0::2, 0::2], x[..., 1::2, 0::2],
...), concatenates them along the channels and convolves the result. That is the same function
as one convolution on the image itself with a kernel twice as large and twice the stride:
output channel o reads phase (dy, dx), channel c, tap (ki, kj) from image pixel
(2 * ki + dy, 2 * kj + dx) of a window twice the size, so the new kernel holds each old weight
at that tap and every tap is used exactly once (YOLOv5 v6.0 made the same change to its
architecture). Padding p becomes 2p and the output size is unchanged for an even height and
width.

Why: ONNX Runtime runs the eight strided Slices and the Concat as separate copies over the
full-resolution image before the first convolution: on YOLOX-Nano (ORT 1.31 CPU, AMD EPYC
Zen 4) they were 0.8-1.0 ms of a 8-14 ms run, more at two threads than at one. Neither ORT's
optimizer nor its quantization pre-processing folds them, and onnxslim / onnxsim do not
either, so it is written here. The folded graph computes the same outputs (to float
rounding); every tensor that survives keeps its name and value, and the concatenation it
removes was a permutation of the image, so ranges calibrated on the original apply unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from app.core.quant.graph_rules import (
    MIN_QDQ_OPSET,
    consumers_of,
    inline_constant_weights,
    name_nodes,
    raise_opset,
)

log = logging.getLogger(__name__)
_BIG = 2**31 - 1  # an "until the end" slice bound: exporters write INT64_MAX or INT32_MAX


@dataclass(frozen=True)
class _Phase:
    source: str  # the tensor the slice chain starts from
    dy: int
    dx: int
    end: int  # the smallest end bound on the last two axes (must reach past the image)


def fold_space_to_depth(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """`model` with every Focus-style slice + concat + conv folded into one strided conv, and
    the names of the convolutions folded (each keeps its name, so node lists taken from the
    original graph still address it). A pattern that differs in any detail is left alone."""
    candidates = _candidates(model)
    if not candidates:  # nothing to fold: no copy, no shape inference
        return model, []
    model_out = onnx.ModelProto()
    model_out.CopyFrom(model)
    shapes = _shapes(model_out)
    folded: list[str] = []
    removed_inputs: set[str] = set()
    for concat in [n for n in model_out.graph.node if n.name in candidates]:
        conv = _fold_one(model_out, concat, shapes, removed_inputs)
        if conv:
            folded.append(conv)
    if folded:
        _drop_dead(model_out, removed_inputs)
        log.info("space-to-depth folded into %s", ", ".join(folded))
    return (model_out if folded else model), folded


def _candidates(model: onnx.ModelProto) -> set[str]:
    """Names of the Concats of four Slice outputs that one Conv alone reads: the only places a
    fold can apply, found without copying the model."""
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    users = consumers_of(model)
    return {
        n.name
        for n in model.graph.node
        if n.op_type == "Concat"
        and len(n.input) == 4
        and all(producers.get(i) == "Slice" for i in n.input)
        and [u.op_type for u in users.get(n.output[0], [])] == ["Conv"]
    }


def _fold_one(
    model: onnx.ModelProto, concat: onnx.NodeProto, shapes: dict, removed_inputs: set[str]
) -> str | None:
    graph = model.graph
    users = consumers_of(model).get(concat.output[0], [])
    if len(concat.input) != 4 or len(users) != 1 or users[0].op_type != "Conv":
        return None
    if concat.output[0] in {o.name for o in graph.output}:
        return None
    conv = users[0]
    producers = {o: n for n in graph.node for o in n.output}
    phases = [_phase(model, name, producers) for name in concat.input]
    if any(p is None for p in phases):
        return None
    source = phases[0].source
    shape = shapes.get(source)
    if (
        {p.source for p in phases} != {source}
        or len({(p.dy, p.dx) for p in phases}) != 4
        or shape is None
        or len(shape) != 4
        or not (isinstance(shape[1], int) and shape[1] > 0)
        or not all(_even_or_free(d) for d in shape[2:])
        or min(p.end for p in phases) < max(_BIG if isinstance(d, str) else d for d in shape[2:])
        or _axis(concat, shape) != 1
    ):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    weight = _initializer(model, conv.input[1])
    channels = shape[1]
    if (
        weight is None
        or weight.ndim != 4
        or weight.shape[1] != 4 * channels
        or attrs.get("group", 1) != 1
        or any(d != 1 for d in attrs.get("dilations", [1, 1]))
        or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
    ):
        return None
    kh, kw = weight.shape[2:]
    folded = np.zeros((weight.shape[0], channels, 2 * kh, 2 * kw), weight.dtype)
    for index, phase in enumerate(phases):
        block = weight[:, index * channels : (index + 1) * channels]
        folded[:, :, phase.dy :: 2, phase.dx :: 2] = block
    strides = attrs.get("strides", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    weight_name = f"{conv.name or conv.output[0]}_space_to_depth_W"
    graph.initializer.append(numpy_helper.from_array(folded, weight_name))
    new = helper.make_node(
        "Conv",
        [source, weight_name, *conv.input[2:]],
        list(conv.output),
        name=conv.name,
        kernel_shape=[2 * kh, 2 * kw],
        strides=[2 * s for s in strides],
        pads=[2 * p for p in pads],
    )
    position = list(graph.node).index(conv)
    graph.node.remove(conv)
    graph.node.insert(position, new)
    graph.node.remove(concat)
    removed_inputs.update(conv.input[1:2])
    return conv.name or conv.output[0]


def _phase(model: onnx.ModelProto, name: str, producers: dict) -> _Phase | None:
    """The pixel phase a chain of Slices ending in `name` takes: steps of 2 from 0 or 1 on the
    last two axes, nothing else sliced; None for anything else."""
    offsets: dict[int, int] = {}
    end = _BIG
    node = producers.get(name)
    while node is not None and node.op_type == "Slice":
        cut = _slice_params(model, node)
        if cut is None:
            return None
        if any(axis not in (2, 3, -2, -1) for axis in cut):
            break  # slices something else (a BGR -> RGB flip): the chain starts at its output
        for axis, (start, stop, step) in cut.items():
            axis = 2 if axis in (2, -2) else 3
            if axis in offsets or step != 2 or start not in (0, 1) or stop <= 0:
                return None
            offsets[axis], end = start, min(end, stop)
        name = node.input[0]
        node = producers.get(name)
    if set(offsets) != {2, 3}:
        return None
    return _Phase(name, offsets[2], offsets[3], end)


def _slice_params(model: onnx.ModelProto, node: onnx.NodeProto) -> dict | None:
    """{axis: (start, end, step)} of a Slice whose bounds are constants, else None."""
    if len(node.input) > 1:  # opset 10+: bounds as inputs, each a constant or absent
        given = [*node.input[1:5], "", "", ""][:4]
        values = [_initializer(model, n) if n else None for n in given]
        if any(n and v is None for n, v in zip(given, values)) or not (given[0] and given[1]):
            return None
        starts, ends, axes, steps = (v.tolist() if v is not None else None for v in values)
    else:  # opset 1-9: attributes, no steps
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        starts, ends, axes, steps = attrs.get("starts"), attrs.get("ends"), attrs.get("axes"), None
        if starts is None or ends is None:
            return None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    return {int(a): (int(s), int(e), int(t)) for a, s, e, t in zip(axes, starts, ends, steps)}


def _initializer(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            try:
                return numpy_helper.to_array(init)
            except (OSError, ValueError):  # external data not loaded: nothing is folded
                return None
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def _even_or_free(dim: int | str) -> bool:
    """A height or width the fold keeps the output of: even, or free (a free one that is odd
    cannot run in the original either, whose four phases would differ in size)."""
    return isinstance(dim, str) or (dim > 0 and dim % 2 == 0)


def _axis(concat: onnx.NodeProto, shape: list) -> int:
    axis = next((helper.get_attribute_value(a) for a in concat.attribute if a.name == "axis"), 0)
    return axis + len(shape) if axis < 0 else axis


def _shapes(model: onnx.ModelProto) -> dict[str, list]:
    """Static shapes of the graph's inputs and of the tensors shape inference can name."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference cannot read is left unfolded
        inferred = model
    shapes: dict[str, list] = {}
    for info in [*inferred.graph.input, *inferred.graph.value_info]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    return shapes


def _drop_dead(model: onnx.ModelProto, removed_inputs: set[str]) -> None:
    """Remove Slices (and the constants only they read) whose outputs nothing reads any more,
    and the initializers only the removed nodes read (the replaced weights among them)."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [
            n
            for n in graph.node
            if n.op_type in ("Slice", "Constant") and not any(o in used for o in n.output)
        ]
        if not dead:
            break
        for node in dead:
            removed_inputs.update(node.input)
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | outputs
    used |= {i.name for i in graph.input}  # an initializer listed as an input (IR < 4) stays
    for init in [i for i in graph.initializer if i.name in removed_inputs - used]:
        graph.initializer.remove(init)


def comparable_float(model_path: str | Path) -> onnx.ModelProto:
    """The model's FP32 graph, named and at the Q/DQ opset, that a fully quantized graph built
    from it (`make_int8`, which prepares and folds) matches by name, weights and activations.
    The precision analysis and the sensitive-block measurement compare the two tensor by
    tensor; against the unfolded model the folded stem conv's weight had no float twin (ORT's
    `create_weight_matching` logged "weight tensor ... not found") and its input another name;
    so it did for weights an exporter shared through Identity nodes
    (`inline_constant_weights`)."""
    model = name_nodes(raise_opset(onnx.load(str(model_path)), MIN_QDQ_OPSET))
    return fold_space_to_depth(inline_constant_weights(model))[0]
