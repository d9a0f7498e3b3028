"""Named alternatives to the ort-cpu Q/DQ placement, for measuring which one runs fastest.

Each is a change to `recipe`'s quantize_static arguments. The default stays what measurement
chose (see `quantize`'s module doc); the others exist so `app.benchmarks.int8_speed` can time
them on the user's CPU rather than assume:
  * s8s8: int8 symmetric activations (ORT's S8S8 kernels; without VNNI they run slower);
  * qlinear-silu: SiLUs quantized (QLinearSigmoid + QLinearMul), the default before SiLUs ran
    float as one fused QuickGelu between DQ and Q (`silu`);
  * depthwise-float: depthwise convolutions left float (their integer kernels gain least);
  * per-tensor: one weight scale per tensor instead of per output channel;
  * reduce-range: 7-bit weights, so x86 AVX2 without VNNI cannot saturate its 16-bit sums of
    u8 x s8 products (VPMADDUBSW), at the cost of one bit of weight precision;
  * u8u8: uint8 weights (symmetric, zero point 128): no saturation, other kernels;
  * heads-int8: the prediction heads quantized too (the default keeps them float);
  * all-int8: every compute op quantized, stem and heads included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx

from app.core.quant.graph_rules import float_tail_nodes, head_compute_nodes

PLACEMENTS = (
    "default",
    "s8s8",
    "qlinear-silu",
    "depthwise-float",
    "per-tensor",
    "reduce-range",
    "u8u8",
    "heads-int8",
    "all-int8",
)


def depthwise_convs(model: onnx.ModelProto) -> list[str]:
    """Conv nodes with group > 1 (depthwise and grouped convolutions)."""
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
    ]


def _exclude(args: dict[str, Any], names: list[str]) -> None:
    args["nodes_to_exclude"] = sorted(set(args["nodes_to_exclude"]) | set(names))


def _include(args: dict[str, Any], names: list[str]) -> None:
    args["nodes_to_exclude"] = sorted(set(args["nodes_to_exclude"]) - set(names))


def apply_placement(name: str, model: onnx.ModelProto, args: dict[str, Any]) -> dict[str, Any]:
    """`args` (an ort-cpu recipe) changed for placement `name`; a new dict."""
    from onnxruntime.quantization import QuantType

    if name not in PLACEMENTS:
        raise ValueError(f"unknown placement {name!r}; one of {PLACEMENTS}")
    args = {**args, "extra_options": dict(args.get("extra_options", {}))}
    changes: dict[str, Callable[[], None]] = {
        "default": lambda: None,
        "s8s8": lambda: (
            args.update(activation_type=QuantType.QInt8),
            args["extra_options"].update(ActivationSymmetric=True),
        ),
        "qlinear-silu": lambda: None,  # `recipe(float_silus=False)`: only its own SiLUs
        "depthwise-float": lambda: _exclude(args, depthwise_convs(model)),
        "per-tensor": lambda: args.update(per_channel=False),
        "reduce-range": lambda: args.update(reduce_range=True),
        "u8u8": lambda: args.update(weight_type=QuantType.QUInt8),
        "heads-int8": lambda: _include(args, head_compute_nodes(model)),
        "all-int8": lambda: args.update(nodes_to_exclude=sorted(float_tail_nodes(model))),
    }
    changes[name]()
    return args
