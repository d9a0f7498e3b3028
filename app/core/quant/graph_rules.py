"""Generic rules for where Q/DQ goes in a graph, found from its structure, not node names.

* float tail: nodes after the last compute op on every path to an output (YOLOX's sigmoids,
  the Concat of box offsets with probabilities, reshapes; a classifier's Softmax). Their value
  ranges mix, so they stay in float.
* head convs: compute ops that feed only the float tail (prediction convs of each head, a
  classifier's final Gemm). ORT's CPU Q/DQ conv also quantizes its own output, which would put
  box offsets and logits through 8 bits, so on that target they stay float too.
* first block: the first compute op after the input and its activation; its BN-folded channel
  ranges can differ a thousandfold, so it is a candidate to keep in float.
"""

from __future__ import annotations

import os
from collections import defaultdict
from functools import lru_cache

import onnx

from app.core.errors import UserError

COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
ACTIVATIONS = frozenset(
    {"Sigmoid", "Mul", "Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Tanh", "PRelu"}
)


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a unique name (quantization tools address nodes by name)."""
    taken = {node.name for node in model.graph.node if node.name}
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            # a made-up name must not be one a later node already has ("Mul_392" appended by
            # an exporter and then again here gave ONNX Runtime "two nodes with same name")
            name, k = f"{node.op_type}_{i}", 1
            while name in taken:
                name, k = f"{node.op_type}_{i}_{k}", k + 1
            node.name = name
            taken.add(name)
        seen.add(node.name)
    return model


def inline_constant_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each Identity of an initializer, and each Constant node holding a tensor, by an
    initializer under the node's output name. torch.onnx.export writes one initializer for
    identical weights (tied, or equal, as untrained zero biases are) and an Identity per other
    user, and attention blocks' scales as Constant nodes; ONNX Runtime's preparation turns
    both into initializers of other names, so a float graph that kept them had no twin for
    those weights in the INT8 graph built from it."""
    inits = {i.name: i for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    keep = []
    for node in model.graph.node:
        tensor = None
        if node.output[0] in outputs:
            pass
        elif node.op_type == "Identity" and node.input[0] in inits:
            tensor = inits[node.input[0]]
        elif node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            tensor = node.attribute[0].t
        if tensor is None:
            keep.append(node)
            continue
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = node.output[0]
        model.graph.initializer.append(copy)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)
        used = {name for node in keep for name in node.input} | outputs
        used |= {i.name for i in model.graph.input}  # (an initializer listed as an input)
        for init in [i for i in model.graph.initializer if i.name not in used]:
            model.graph.initializer.remove(init)
    return model


def consumers_of(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it."""
    out: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            out[name].append(node)
    return out


def float_tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes from which no compute op is reachable downstream (processed in reverse topo order)."""
    consumers = consumers_of(model)
    reaches: dict[str, bool] = {}
    for node in reversed(model.graph.node):  # ONNX graphs are topologically sorted
        reaches[node.name] = any(
            c.op_type in COMPUTE_OPS or reaches.get(c.name, False)
            for out in node.output
            for c in consumers.get(out, [])
        )
    return [
        n.name for n in model.graph.node if n.op_type not in COMPUTE_OPS and not reaches[n.name]
    ]


def tail_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors written by float-tail nodes (nodes named): only the tail itself and the graph's
    outputs read them, so no Q/DQ ever needs their ranges. After an in-graph NMS their shapes
    depend on the data (and can be empty)."""
    tail = set(float_tail_nodes(model))
    return {o for n in model.graph.node if n.name in tail for o in n.output}


def head_compute_nodes(model: onnx.ModelProto) -> list[str]:
    """Compute ops whose outputs feed only the float tail or the graph outputs."""
    tail = set(float_tail_nodes(model))
    outputs = {o.name for o in model.graph.output}
    consumers = consumers_of(model)
    heads = []
    for node in model.graph.node:
        if node.op_type not in COMPUTE_OPS:
            continue
        users = [c for out in node.output for c in consumers.get(out, [])]
        if all(c.name in tail for c in users) and (users or any(o in outputs for o in node.output)):
            heads.append(node.name)
    return heads


def compute_blocks(model: onnx.ModelProto) -> list[list[str]]:
    """Every compute op with its activation chain (SiLU = Sigmoid + Mul, Relu, Clip...), in
    graph order: the unit that is kept in float or quantized as a whole."""
    consumers = consumers_of(model)
    blocks = []
    for node in model.graph.node:
        if node.op_type not in COMPUTE_OPS:
            continue
        block = [node.name]
        frontier = list(node.output)
        while frontier:
            tensor = frontier.pop(0)
            for user in consumers.get(tensor, []):
                if user.op_type in ACTIVATIONS and user.name not in block:
                    # a Mul fed by both the conv and its Sigmoid is the SiLU of this block
                    block.append(user.name)
                    frontier += list(user.output)
        blocks.append(block)
    return blocks


def leading_compute_blocks(model: onnx.ModelProto, count: int) -> list[str]:
    """Node names of the first `count` compute blocks after the input. The stem sees raw pixels
    and the first layers after it see BN-folded channels whose ranges differ a thousandfold:
    measured on YOLOX-Nano these are the most sensitive units for both Q/DQ layouts."""
    return [name for block in compute_blocks(model)[:count] for name in block]


def first_compute_block(model: onnx.ModelProto) -> list[str]:
    """The first compute op reached from the input, with its activation chain."""
    return leading_compute_blocks(model, 1)


def compute_nodes(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS]


def dedupe_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop repeated identical nodes that write the same output (the FP16 converter emits one
    Cast per blocked consumer under one name, which breaks SSA form); keep the first."""
    seen: dict[str, onnx.NodeProto] = {}
    keep = []
    for node in model.graph.node:
        first = next((seen[o] for o in node.output if o in seen), None)
        if first is not None:
            if (first.op_type, list(first.input), list(first.attribute)) != (
                node.op_type,
                list(node.input),
                list(node.attribute),
            ):
                raise ValueError(f"two different nodes write {node.output[0]}")
            continue
        seen.update({o: node for o in node.output})
        keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def computes_in_fp16(model_path: str) -> bool:
    """True when most compute ops of the ONNX file take FP16 weights (an FP16 variant); read
    once per file version."""
    stat = os.stat(model_path)
    return _computes_in_fp16(str(model_path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _computes_in_fp16(path: str, _mtime: int, _size: int) -> bool:
    model = onnx.load(path, load_external_data=False)
    dtypes = {t.name: t.data_type for t in model.graph.initializer}
    weights = [
        dtypes[n.input[1]]
        for n in model.graph.node
        if n.op_type in COMPUTE_OPS and len(n.input) > 1 and n.input[1] in dtypes
    ]
    half = sum(1 for d in weights if d == onnx.TensorProto.FLOAT16)
    return bool(weights) and half * 2 > len(weights)


MIN_QDQ_OPSET = 13  # per-channel Q/DQ (`axis`) needs opset 13


def raise_opset(model: onnx.ModelProto, minimum: int) -> onnx.ModelProto:
    """Convert the default-domain opset up to `minimum` when it is lower (onnx's converter)."""
    from onnx import version_converter

    current = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if current >= minimum:
        return model
    try:
        return version_converter.convert_version(model, minimum)
    except Exception as exc:  # the converter raises bare RuntimeError/ValidationError types
        raise UserError(
            f"cannot raise the model's opset from {current} to {minimum} for per-channel INT8 "
            f"({str(exc).splitlines()[0][:120]}); re-export it at opset {minimum} or newer"
        ) from exc
