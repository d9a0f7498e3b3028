"""Graph preparation before quantization: constant folding, pads folded into convolutions and
pools, shape inference, through ONNX Runtime's own `quant_pre_process`; then a Focus stem's
slices folded into its convolution (`space_to_depth`), which nothing maintained does.

Why: a float node left between a DequantizeLinear and a QuantizeLinear runs in float, with a
dequantize and a quantize pass around it. EfficientNet-Lite0's 17 TensorFlow-style "same" Pad
nodes did exactly that (issue 17): with them folded into the convolutions its INT8 graph ran at
0.70-0.75x FP32's latency instead of 1.0x (ORT 1.31 CPU, AMD EPYC, AVX2 without VNNI).

Every surviving tensor keeps its name and its value (folding and pad fusion do not change what
a tensor holds), so ranges calibrated on the original model apply unchanged.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import onnx

from app.core.errors import UserError
from app.core.quant.space_to_depth import fold_space_to_depth

log = logging.getLogger(__name__)


def prepare_for_quantization(
    model: onnx.ModelProto, workdir: Path | None = None
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The model after ORT's quantization pre-processing, and what changed (node counts).
    `workdir`: where its working copies go (a hidden .part folder; the workspace cleans those
    up after a killed job, /tmp would keep them)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    before = Counter(n.op_type for n in model.graph.node)
    # Symbolic shape inference needs sympy, which the app does not otherwise depend on; ONNX's
    # own shape inference still runs, which is enough for the static-shape graphs quantized here.
    symbolic = importlib.util.find_spec("sympy") is not None
    with tempfile.TemporaryDirectory(prefix=".prepare.", suffix=".part", dir=workdir) as tmp:
        src, out = Path(tmp) / "in.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(model, str(src))
        try:
            quant_pre_process(str(src), str(out), skip_symbolic_shape=not symbolic)
            prepared = onnx.load(str(out))
        except Exception as exc:  # ORT's optimizer and shape inference raise assorted types
            first = str(exc).strip().splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise UserError(
                f"graph preparation before quantization failed ({first}); check that the model "
                "loads in ONNX Runtime (`int8-studio inspect`) or re-export it"
            ) from exc
    missing = _lost_outputs(model, prepared)
    if missing:
        log.info("preparation kept the original graph: outputs %s would be lost", missing)
        return model, {"prepared": False, "reason": f"outputs {missing} not kept"}
    prepared, focus = fold_space_to_depth(prepared)
    after = Counter(n.op_type for n in prepared.graph.node)
    return prepared, {
        "prepared": True,
        "nodes_before": sum(before.values()),
        "nodes_after": sum(after.values()),
        "pads_folded": before.get("Pad", 0) - after.get("Pad", 0),
        "space_to_depth_folded": focus,
        "symbolic_shapes": symbolic,
    }


def _lost_outputs(original: onnx.ModelProto, prepared: onnx.ModelProto) -> list[str]:
    """Graph outputs of the original that the prepared graph no longer has (by name)."""
    kept = {o.name for o in prepared.graph.output}
    return [o.name for o in original.graph.output if o.name not in kept]


def float_pads_between_qdq(model: onnx.ModelProto) -> list[str]:
    """Pad nodes fed by a DequantizeLinear and feeding a QuantizeLinear: float work inside an
    integer section, which preparation exists to remove."""
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = []
    for node in model.graph.node:
        if node.op_type != "Pad" or not node.input:
            continue
        src = producers.get(node.input[0])
        users = consumers.get(node.output[0], [])
        if (
            src is not None
            and src.op_type == "DequantizeLinear"
            and any(u.op_type == "QuantizeLinear" for u in users)
        ):
            found.append(node.name)
    return found


def preparation_lines(metas: list[dict[str, Any]]) -> list[str]:
    """What preparation rewrote in these variants' graphs (pads, a Focus stem), one line per
    distinct rewrite naming the variants it applies to, for the CLI and the GUI; none for
    variants it rewrote nothing in."""
    said: dict[str, list[str]] = {}
    for meta in metas:
        prep = meta.get("preparation") or {}
        pads = prep.get("pads_folded") or 0
        focus = prep.get("space_to_depth_folded") or meta.get("space_to_depth_folded")
        done = [f"{pads} Pad node(s) folded into convolutions"] * bool(pads > 0)
        done += ["Focus stem folded into one strided conv"] * bool(focus)
        if done:
            said.setdefault("; ".join(done), []).append(str(meta.get("name", "variant")))
    return [
        f"{', '.join(names)}: {text} (same outputs, fewer passes)" for text, names in said.items()
    ]
