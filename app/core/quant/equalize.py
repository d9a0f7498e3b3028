"""Activation equalisation: per-channel scales that even out a quantized convolution's input
ranges, folded into that convolution's weights, so the graph computes the same in float.

Why: one symmetric INT8 scale per tensor serves every channel; YOLOX-Nano's stem SiLU output
has per-channel maxima from 0.03 to 131 (median 18), so 5 of its 16 channels fall below one
quantization step and the default recipe kept the stem float. Channel c of the activation is
divided by s_c and input channel c of every consuming convolution's weights multiplied by s_c
(SmoothQuant's migration, cross-layer equalisation's idea):
  * producer activation positively homogeneous (Relu, LeakyRelu, PRelu: f(x / s) = f(x) / s
    for s > 0): 1/s is folded into the producing convolution's output channels (CLE), no node
    added;
  * producer SiLU (x * sigmoid(x), not homogeneous): a constant per-channel Mul(1/s) is inserted
    after it, so the quantized tensor is the scaled one. When the producer's own output is
    quantized too (the ort-cpu layout quantizes convolution outputs), 1/s is also folded into
    the producer and a Mul(s) restores its value before the SiLU, which then runs in float.
s_c = a_c^alpha / w_c^(1 - alpha) (SmoothQuant), with a_c the channel's largest |activation|
on the calibration images and w_c the largest |weight| reading that input channel.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from app.core.quant.silu import silu_pairs

ALPHA = 0.5  # SmoothQuant's balance of activation against weight range (its default)
SPREAD = 4.0  # equalise when the largest channel maximum exceeds the median's this many times
HOMOGENEOUS = ("Relu", "LeakyRelu", "PRelu")
SCALE_FLOOR = 1e-5  # relative to the largest channel: dead channels get a finite scale


@dataclass
class Site:
    """One activation feeding quantized convolutions only."""

    tensor: str  # the activation output the convolutions read
    producer: str  # the convolution computing the pre-activation
    activation: list[str]  # its activation nodes (Sigmoid + Mul for SiLU)
    kind: str  # "silu" or "homogeneous"
    consumers: list[str]  # the convolutions reading `tensor`
    pre: str = ""  # the producer's output (the pre-activation)
    channels: int = 0
    changed: list[str] = field(default_factory=list)  # tensors whose values changed
    float_nodes: list[str] = field(default_factory=list)  # nodes that must stay unquantized


def _maps(model: onnx.ModelProto):
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            consumers[i].append(n)
    return producers, consumers


def _conv_weight(model: onnx.ModelProto, node: onnx.NodeProto) -> np.ndarray | None:
    inits = {i.name: i for i in model.graph.initializer}
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return None
    return numpy_helper.to_array(inits[node.input[1]])


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _reads_per_channel(model: onnx.ModelProto, node: onnx.NodeProto, channels: int) -> bool:
    """A convolution whose input channel c has its own weights: plain (group 1) or depthwise."""
    w = _conv_weight(model, node)
    if w is None or w.ndim != 4:
        return False
    group = _group(node)
    return (group == 1 and w.shape[1] == channels) or (group == channels and w.shape[1] == 1)


def find_sites(model: onnx.ModelProto, quantized: set[str]) -> list[Site]:
    """Activations produced by conv + (SiLU | homogeneous activation) and read only by
    quantized convolutions (names in `quantized`) with per-input-channel weights."""
    producers, consumers = _maps(model)
    outputs = {o.name for o in model.graph.output}
    silus = {mul.output[0]: sig for sig, mul in silu_pairs(model)}  # Mul output -> its Sigmoid
    sites = []
    for node in model.graph.node:
        kind, act, tensor = None, [], None
        if node.op_type in HOMOGENEOUS:
            kind, act, tensor = "homogeneous", [node.name], node.output[0]
            pre = node.input[0]
        elif node.output[0] in silus:
            sig = silus[node.output[0]]
            pre = sig.input[0]
            kind, act, tensor = "silu", [sig.name, node.name], node.output[0]
        else:
            continue
        conv = producers.get(pre)
        if conv is None or conv.op_type != "Conv" or _conv_weight(model, conv) is None:
            continue
        # the pre-activation must feed this activation only, or scaling it would leak elsewhere
        if {c.name for c in consumers[pre]} != set(act) or tensor in outputs or pre in outputs:
            continue
        users = consumers[tensor]
        channels = _conv_weight(model, conv).shape[0]
        if (
            not users
            or any(u.name not in quantized for u in users)
            or not all(_reads_per_channel(model, u, channels) for u in users)
        ):
            continue
        sites.append(Site(tensor, conv.name, act, kind, [u.name for u in users], pre, channels))
    return sites


def uneven(amax: np.ndarray, spread: float = SPREAD) -> bool:
    """True when the channels' maxima are uneven enough to be worth equalising."""
    return float(amax.max()) > spread * max(float(np.median(amax)), 1e-12)


def input_channel_weight_max(model: onnx.ModelProto, site: Site) -> np.ndarray:
    """Largest |weight| reading each input channel, over every consuming convolution."""
    nodes = {n.name: n for n in model.graph.node}
    out = np.zeros(site.channels, np.float32)
    for name in site.consumers:
        w = np.abs(_conv_weight(model, nodes[name]))
        per = w.max(axis=(0, 2, 3)) if _group(nodes[name]) == 1 else w.max(axis=(1, 2, 3))
        out = np.maximum(out, per)
    return out


def smooth_scales(act_max: np.ndarray, weight_max: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """SmoothQuant's s_c = a_c^alpha / w_c^(1 - alpha), floored so dead channels stay finite."""
    a = np.maximum(act_max.astype(np.float64), SCALE_FLOOR * float(act_max.max()))
    w = np.maximum(weight_max.astype(np.float64), SCALE_FLOOR * float(weight_max.max()))
    return (a**alpha / w ** (1.0 - alpha)).astype(np.float32)


def _set_init(model: onnx.ModelProto, node: onnx.NodeProto, slot: int, value: np.ndarray) -> None:
    """Give `node` its own copy of input `slot` holding `value` (the original may be shared)."""
    name = f"{node.input[slot]}__eq_{node.name}"
    model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    node.input[slot] = name


def _const(model: onnx.ModelProto, name: str, values: np.ndarray) -> str:
    model.graph.initializer.append(
        numpy_helper.from_array(values.reshape(1, -1, 1, 1).astype(np.float32), name)
    )
    return name


def apply_site(model: onnx.ModelProto, site: Site, scales: np.ndarray, fold_producer: bool) -> None:
    """Equalise one site in place with `scales` (see the module doc); records which tensors
    changed value and which nodes must stay float in `site`."""
    nodes = {n.name: n for n in model.graph.node}
    producer = nodes[site.producer]
    for name in site.consumers:  # input channel c of each consumer reads s_c times more
        conv = nodes[name]
        w = numpy_helper.to_array(
            next(i for i in model.graph.initializer if i.name == conv.input[1])
        ).copy()
        shape = (1, -1, 1, 1) if _group(conv) == 1 else (-1, 1, 1, 1)
        _set_init(model, conv, 1, w * scales.reshape(shape))
    fold = site.kind == "homogeneous" or fold_producer
    if fold:  # output channel c of the producer computes x_c / s_c
        inits = {i.name: i for i in model.graph.initializer}
        w = numpy_helper.to_array(inits[producer.input[1]])
        _set_init(model, producer, 1, w / scales.reshape(-1, 1, 1, 1))
        if len(producer.input) > 2 and producer.input[2]:
            _set_init(model, producer, 2, numpy_helper.to_array(inits[producer.input[2]]) / scales)
    if site.kind == "homogeneous":
        site.changed = [producer.output[0], site.tensor]
        return
    new_nodes = []
    pre = producer.output[0]
    if fold_producer:  # the producer writes x / s; Mul(s) gives the SiLU its x back
        scaled_pre = f"{pre}__eq"
        producer.output[0] = scaled_pre
        restore = f"{site.producer}__eq_restore"
        const = _const(model, f"{restore}_s", scales)
        new_nodes.append((producer, helper.make_node("Mul", [scaled_pre, const], [pre], restore)))
        site.changed.append(scaled_pre)
        site.float_nodes += [restore, *site.activation]
    scaled = f"{site.tensor}__eq"
    name = f"{site.activation[-1]}__eq_scale"
    const = _const(model, f"{name}_inv_s", 1.0 / scales)
    last = nodes[site.activation[-1]]
    new_nodes.append((last, helper.make_node("Mul", [site.tensor, const], [scaled], name)))
    for consumer in site.consumers:
        conv = nodes[consumer]
        conv.input[0] = scaled
    site.changed.append(scaled)
    site.float_nodes.append(name)
    for after, new in new_nodes:  # keep the node list in topological order
        index = list(model.graph.node).index(after)
        model.graph.node.insert(index + 1, new)
