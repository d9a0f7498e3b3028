"""Zero points for a layout that has none: activation shifting for symmetric INT8 (TensorRT).

TensorRT takes only zero points of 0, so a conv input whose calibrated range is [lo, hi] gets
the scale max(|lo|, |hi|) / 127. A SiLU output ([-0.28, hi]) or a ReLU output ([0, hi]) then
uses half of the 255 codes: one bit lost on every activation, where the uint8 layouts (ort-cpu,
openvino) keep it with their zero points. Shifting gets it back, exactly, without a zero point:
with c the middle of [lo, hi], the conv reads x - c (range +-(hi - lo) / 2, the whole grid) and
its bias absorbs the shift,

    conv(x) = conv(x - c) + c * sum(W)     (per output channel, over its inputs and taps),

which holds at every pixel only if padding pads x - c with -c (the padded zeros of x): a padded
conv gets an explicit Pad with constant -c and pads of 0. c is snapped to a multiple of the
tensor's final scale, so -c, like a zero point, is a code of the grid and the padding exact.
The idea is that of Outlier Suppression+ (channel-wise shifting before symmetric quantization,
Wei et al. 2023), here per tensor, which its bias folding makes exact for convolutions.

Nothing in ONNX Runtime's quantization tools or onnx does this, so it is written here: graph
edits on the float model before `quantize_static`, and the ranges of the shifted tensors added
to the calibration's ranges (derived from the measured ones: a shift moves a range, it does not
change its width).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from app.core.quant.ranges import ranges_of

log = logging.getLogger(__name__)

SHIFT_VERSION = 1
# Shift a tensor when symmetric quantization would waste at least this share of its scale:
# max(|lo|, |hi|) / ((hi - lo) / 2) >= MIN_GAIN (a SiLU output reads about 2, a ReLU output 2)
MIN_GAIN = 1.25
QMAX = 127  # symmetric int8 activations: codes -127..127 in the scale ORT computes


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node: onnx.NodeProto, name: str, value: Any) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def shift_plan(
    model: onnx.ModelProto, convs: set[str], ranges: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """{conv input tensor: (shift c, bound b of the shifted range +-b)} for the inputs of
    `convs` (quantized Conv nodes) whose range wastes half the symmetric grid (MIN_GAIN). Convs
    with auto_pad SAME or without a constant weight are left alone."""
    inits = {i.name for i in model.graph.initializer}
    plan: dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or node.name not in convs or len(node.input) < 2:
            continue
        if node.input[1] not in inits or _attr(node, "auto_pad", b"NOTSET") not in (
            b"NOTSET",
            "NOTSET",
            b"VALID",
            "VALID",
        ):
            continue
        x = node.input[0]
        if x not in ranges or x in plan:
            continue
        lo, hi = ranges[x]
        half = (hi - lo) / 2
        # a range without 0 is left alone: then |c| could exceed the grid, and no zero point
        # of the same width could describe the shifted grid on the unshifted tensor
        if not lo <= 0 <= hi or half <= 0 or max(-lo, hi) / half < MIN_GAIN:
            continue
        # The scale ORT will compute from the range +-b is b / QMAX. With b one step wider than
        # half, c snapped to that step still keeps [lo - c, hi - c] inside +-b (it moves by at
        # most step / 2), and -c is a code of the grid.
        step = half / (QMAX - 1)
        plan[x] = (round(((lo + hi) / 2) / step) * step, step * QMAX)
    return plan


def apply_shifts(
    model: onnx.ModelProto, plan: dict[str, tuple[float, float]]
) -> tuple[
    onnx.ModelProto,
    dict[str, tuple[float, float]],
    dict[str, float],
    dict[str, tuple[str, float, int]],
]:
    """A copy of `model` whose convs read their inputs shifted by `plan` (see the module doc),
    the ranges of the new tensors, {conv changed: its shift} and {new tensor: (the tensor it
    shifts, the shift, its channels)}."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {i.name: i for i in model.graph.initializer}
    new_ranges: dict[str, tuple[float, float]] = {}
    changed: dict[str, float] = {}
    sources: dict[str, tuple[str, float, int]] = {}
    shifted_of: dict[str, str] = {}
    added: list[onnx.NodeProto] = []
    position: dict[str, int] = {}  # where to put the new nodes: before the first reader
    for index, node in enumerate(model.graph.node):
        if node.op_type != "Conv" or node.input[0] not in plan:
            continue
        x = node.input[0]
        c, bound = plan[x]
        channels = int(inits[node.input[1]].dims[1]) * int(_attr(node, "group", 1))
        if x not in shifted_of:
            shifted = f"{x}__shifted"
            const = f"{x}__shift"
            model.graph.initializer.append(numpy_helper.from_array(np.array(c, np.float32), const))
            added.append(helper.make_node("Sub", [x, const], [shifted], name=f"{x}__shift_sub"))
            position[added[-1].name] = index
            shifted_of[x] = shifted
            new_ranges[shifted] = (-bound, bound)
            sources[shifted] = (x, c, channels)
        source = shifted_of[x]
        pads = list(_attr(node, "pads", []))
        if any(pads):
            padded = f"{node.name}__shift_padded"
            pads_name = f"{node.name}__shift_pads"
            rank = len(pads) // 2
            onnx_pads = [0, 0, *pads[:rank], 0, 0, *pads[rank:]]
            model.graph.initializer.append(
                numpy_helper.from_array(np.array(onnx_pads, np.int64), pads_name)
            )
            model.graph.initializer.append(
                numpy_helper.from_array(np.array(-c, np.float32), f"{padded}_value")
            )
            added.append(
                helper.make_node(
                    "Pad",
                    [source, pads_name, f"{padded}_value"],
                    [padded],
                    name=f"{node.name}__shift_pad",
                    mode="constant",
                )
            )
            position[added[-1].name] = index
            new_ranges[padded] = (-bound, bound)
            sources[padded] = (x, c, channels)
            source = padded
            _set_attr(node, "pads", [0] * len(pads))
        node.input[0] = source
        weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        correction = c * weight.reshape(weight.shape[0], -1).sum(axis=1)
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
            inits[node.input[2]].CopyFrom(
                numpy_helper.from_array((bias + correction).astype(np.float32), node.input[2])
            )
        else:
            name = f"{node.name}__shift_bias"
            model.graph.initializer.append(
                numpy_helper.from_array(correction.astype(np.float32), name)
            )
            if len(node.input) == 2:
                node.input.append(name)
            else:
                node.input[2] = name
        changed[node.name] = c
    # insert each new node right before the conv that first needed it (topological order)
    nodes = list(model.graph.node)
    by_index: dict[int, list[onnx.NodeProto]] = {}
    for n in added:
        by_index.setdefault(position[n.name], []).append(n)
    ordered = []
    for index, node in enumerate(nodes):
        ordered += by_index.get(index, [])
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return model, new_ranges, changed, sources


def shift_for_int8(
    model: onnx.ModelProto, ranges_path: Path, convs: set[str], workdir: Path
) -> tuple[onnx.ModelProto, Path, dict[str, Any]]:
    """The shifted graph, a ranges file covering its new tensors (written in `workdir`) and what
    was done; the inputs unchanged when no conv input wastes half its grid."""
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, load_tensors_data

    data = load_tensors_data(ranges_path)
    ranges = ranges_of(data)
    plan = shift_plan(model, convs, ranges)
    info: dict[str, Any] = {"version": SHIFT_VERSION, "tensors": len(plan), "convs": 0}
    if not plan:
        return model, ranges_path, info
    model, new_ranges, changed, sources = apply_shifts(model, plan)
    info["convs"] = len(changed)
    info["padded"] = sum(1 for x in sources if not x.endswith("__shifted"))
    info["sources"] = sources
    merged = dict(data.items())
    for name, (lo, hi) in new_ranges.items():
        merged[name] = TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
    out = workdir / "ranges_shifted.json"
    from onnxruntime.quantization.calibrate import save_tensors_data

    save_tensors_data(TensorsData(data.calibration_method, merged), out)
    log.info(
        "shifted %d conv inputs (%d convs) onto the whole symmetric grid", len(plan), len(changed)
    )
    return model, out, info


def shifted_means(
    means: dict[str, np.ndarray], sources: dict[str, tuple[str, float, int]]
) -> dict[str, np.ndarray]:
    """Channel means for `bias_correction.correct_biases` with those of the shifted tensors
    added, E[x] - c, which makes its rewrite of a shifted conv's bias fold the shift exactly for
    the rounded weights the graph really has:
        b + c * sum(W) - (W_q - W) . (E[x] - c) = b + c * sum(W_q) - (W_q - W) . E[x].
    `apply_shifts` folded c * sum(W) with the float weights; left at that, each output channel
    would be off by c * sum(W_q - W) (it cost YOLOX-Nano 3 mAP50-95). Without a measured E[x]
    (bias correction off) E[x] = 0 is taken, which leaves the folding alone: b + c * sum(W_q),
    so that conv_q(x - c) + bias = conv_q(x) + b."""
    out = dict(means)
    for tensor, (x, c, channels) in sources.items():
        mean = np.asarray(means[x], np.float64) if x in means else np.zeros(channels)
        out[tensor] = mean - c
    return out


def shift_origins(model: onnx.ModelProto) -> dict[str, dict[str, Any]]:
    """For a graph `apply_shifts` wrote (float or quantized): {shifted or padded tensor: {"source":
    the tensor it shifts, "shift": c, "pads": the Pad's ONNX pads or None}}. Analyses that
    quantize the float graph's own tensors (`block_sensitivity`, the precision debugger) use it
    to reproduce a shifted quantization on the unshifted tensor: scale s with zero point -c / s,
    the same grid exactly (c is a multiple of s)."""
    inits = {i.name: i for i in model.graph.initializer}
    subs: dict[str, tuple[str, float]] = {}
    out: dict[str, dict[str, Any]] = {}
    for node in model.graph.node:
        if node.op_type == "Sub" and node.name.endswith("__shift_sub") and node.input[1] in inits:
            c = float(numpy_helper.to_array(inits[node.input[1]]))
            subs[node.output[0]] = (node.input[0], c)
            out[node.output[0]] = {"source": node.input[0], "shift": c, "pads": None}
    producer = {o: n for n in model.graph.node for o in n.output}

    def before_qdq(tensor: str) -> str:
        """The tensor a Q -> DQ pair quantizes, for a DQ output (`quantize_static` puts one on a
        shifted tensor that a 1x1 conv reads too, and the Pad of a 3x3 conv then reads that)."""
        dq = producer.get(tensor)
        if dq is not None and dq.op_type == "DequantizeLinear":
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                return q.input[0]
        return tensor

    for node in model.graph.node:
        source = before_qdq(node.input[0]) if node.input else ""
        if node.op_type == "Pad" and node.name.endswith("__shift_pad") and source in subs:
            x, c = subs[source]
            pads = numpy_helper.to_array(inits[node.input[1]]).tolist()
            out[node.output[0]] = {"source": x, "shift": c, "pads": pads}
    return out


def unshifted(values: np.ndarray, shift: float, pads: list[int] | None) -> np.ndarray:
    """A shifted (and padded) tensor's values as the source tensor's: + c, padding cut off."""
    values = values + np.float32(shift)
    if pads:
        rank = len(pads) // 2
        index = tuple(
            slice(begin, values.shape[axis] - end)
            for axis, (begin, end) in enumerate(zip(pads[:rank], pads[rank:]))
        )
        values = values[index]
    return values
