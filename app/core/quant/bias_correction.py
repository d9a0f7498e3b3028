"""Bias correction for INT8 convolutions: each quantized conv's int32 bias absorbs the mean
shift that rounding its weights causes, b' = b - (W_q - W) . E[x].

Why (issue 17): rounding weights to 8 bits is a fixed error per output channel, and on inputs
that are mostly positive (ReLU6 outputs) it adds the same offset to every output, image after
image; 49 such layers in a row bent EfficientNet-Lite0's logits more than the activations'
rounding did. Measured with the Q/DQ graph run as exact fake-quant math (ORT graph
optimizations off, so no kernel saturation), Percentile on coco-train128, 177 photos: top-1
agreement with FP32 90.4% -> 96.6%, logit SQNR 19.6 -> 24.4 dB (float weights: 97.2%, 26.5 dB).
This is the empirical bias correction of Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction" (ICCV 2019), with E[x] measured on the calibration images.

The per-channel input means are measured once per calibration, on its own images, and kept as
`channel_means.json` beside its `ranges.json`; every INT8 graph built from that calibration
(the variant, mixed-precision candidates, the per-layer analysis) then gets the same biases.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from app.core.atomic import write_json
from app.core.errors import Cancelled, CancelToken
from app.core.model.workspace import Workspace
from app.core.ort_session import cpu_session
from app.core.quant.space_to_depth import fold_space_to_depth
from app.core.safe_json import load_json

log = logging.getLogger(__name__)
CHANNEL_MEANS = "channel_means.json"
MAX_IMAGES = 128  # the means settle long before this; it bounds the extra float pass
INT32 = np.iinfo(np.int32)


def conv_input_tensors(model: onnx.ModelProto) -> list[str]:
    """Activations a conv reads: the data input of every Conv and of every Pad (a Pad folded
    into the conv by graph preparation hands its input to the conv), and of a Focus stem's conv
    once folded (`space_to_depth`)."""
    inits = {i.name for i in model.graph.initializer}
    folded = fold_space_to_depth(model)[0]  # a Focus stem's conv reads the image once folded
    nodes = [*model.graph.node, *folded.graph.node]
    names = [n.input[0] for n in nodes if n.op_type in ("Conv", "Pad") and n.input]
    return sorted({t for t in names if t and t not in inits})


def channel_means(
    model_path: Path,
    input_name: str,
    batches: Iterable[np.ndarray],
    tensors: list[str],
    cancel: CancelToken | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Mean over images and positions of each channel (axis 1) of `tensors`; and image count."""
    cancel = cancel or CancelToken()
    model = onnx.load(str(model_path))
    inner = [t for t in tensors if t != input_name]
    del model.graph.output[:]
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in inner
    )
    sess = cpu_session(model)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, float] = {}
    images = 0
    for batch in batches:
        cancel.check()
        values = dict(zip(inner, sess.run(None, {input_name: batch})))
        if input_name in tensors:
            values[input_name] = batch.astype(np.float32)
        for name, v in values.items():
            if v.ndim < 3:
                continue
            axes = tuple(i for i in range(v.ndim) if i != 1)
            sums[name] = sums.get(name, 0) + v.sum(axes, dtype=np.float64)
            counts[name] = counts.get(name, 0) + v.size / v.shape[1]
        images += batch.shape[0]
    return {k: sums[k] / counts[k] for k in sums}, images


def ensure_channel_means(
    ws: Workspace, calibration: Path, cancel: CancelToken | None = None
) -> Path | None:
    """`calibration`'s channel_means.json, measured on its images the first time (see module
    doc); None when they cannot be measured (images gone, a graph ORT cannot expose the conv
    inputs of): the INT8 graph is then built without the correction."""
    from app.core.quant.calibration_images import CalibrationReader

    path = calibration / CHANNEL_MEANS
    spec = ws.spec()
    if load_channel_means(calibration, spec.sha256) is not None:
        return path
    meta = load_json(calibration / "meta.json")
    files = [Path(p) for p in meta.get("images_used", [])][:MAX_IMAGES]
    # with its weights: finding the conv inputs folds a Focus stem, which reads initializers,
    # and external ones resolve only beside the model file (a model saved with a .onnx.data
    # file had its bias correction skipped)
    model = onnx.load(str(spec.path))
    reader = CalibrationReader(spec, [f for f in files if f.is_file()], batch=1, cancel=cancel)
    try:
        means, images = channel_means(
            Path(spec.path), spec.input_name, reader, conv_input_tensors(model), cancel
        )
    except Cancelled:
        raise
    except Exception as exc:  # ORT's Fail/InvalidGraph... on a graph it cannot expose tensors of
        # the INT8 graph is still right without the correction, only less close to FP32
        log.warning("bias correction skipped: channel means not measurable (%s)", exc)
        return None
    if not images:
        log.info("bias correction skipped: no calibration image of %s is readable", calibration)
        return None
    means_json = {k: [float(x) for x in v] for k, v in means.items()}
    write_json(path, {"model_sha256": spec.sha256, "images": images, "means": means_json})
    return path


def load_channel_means(
    calibration: Path, model_sha256: str | None = None
) -> dict[str, np.ndarray] | None:
    """The means kept beside a calibration's ranges, or None when absent, damaged or (given
    `model_sha256`) made for another model."""
    try:
        data = load_json(calibration / CHANNEL_MEANS)
        if model_sha256 is not None and data.get("model_sha256") != model_sha256:
            return None
        return {k: np.asarray(v, np.float64) for k, v in data["means"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _dequantized(inits: dict[str, Any], node: onnx.NodeProto) -> np.ndarray:
    """The float value of a DequantizeLinear of an initializer (per-tensor or per-axis)."""
    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
    zero = (
        numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        if len(node.input) > 2 and node.input[2]
        else np.zeros(())
    )
    if scale.size > 1:  # per-axis: scale (and zero point) run along `axis`
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = zero.reshape(shape) if zero.size > 1 else zero.reshape(())
    return (q - zero) * scale


def correct_biases(
    qmodel: onnx.ModelProto, float_model: onnx.ModelProto, means: dict[str, np.ndarray]
) -> list[str]:
    """Rewrite, in place, the int32 bias of every quantized Conv of `qmodel` whose input mean
    is known: b' = b - (W_q - W) . E[x], W and b from `float_model` (same node names).
    Returns the names of the convs corrected."""
    inits = {i.name: i for i in qmodel.graph.initializer}
    producer = {o: n for n in qmodel.graph.node for o in n.output}
    f_inits = {i.name: i for i in float_model.graph.initializer}
    f_convs = {n.name: n for n in float_model.graph.node if n.op_type == "Conv"}
    done = []
    for node in qmodel.graph.node:
        orig = f_convs.get(node.name)
        if node.op_type != "Conv" or orig is None or len(node.input) < 3 or len(orig.input) < 3:
            continue
        dq_x, dq_w, dq_b = (producer.get(t) for t in node.input[:3])
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in (dq_x, dq_w, dq_b)):
            continue
        q_x = producer.get(dq_x.input[0])
        mean = means.get(q_x.input[0]) if q_x is not None else None
        if mean is None or orig.input[1] not in f_inits or orig.input[2] not in f_inits:
            continue
        if dq_w.input[0] not in inits or dq_b.input[0] not in inits:
            continue
        w = numpy_helper.to_array(f_inits[orig.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(f_inits[orig.input[2]]).astype(np.float64)
        err = (_dequantized(inits, dq_w) - w).reshape(w.shape[0], w.shape[1], -1).sum(2)
        out_ch, per_group = err.shape
        if mean.size % per_group:
            continue
        groups = mean.size // per_group
        group_of = np.arange(out_ch) // max(1, out_ch // groups)
        shift = (err * mean.reshape(groups, per_group)[group_of]).sum(1)
        scale = numpy_helper.to_array(inits[dq_b.input[1]]).astype(np.float64)
        q_b = np.clip(np.round((b - shift) / scale), INT32.min, INT32.max).astype(np.int32)
        inits[dq_b.input[0]].CopyFrom(numpy_helper.from_array(q_b, dq_b.input[0]))
        done.append(node.name)
    return done
