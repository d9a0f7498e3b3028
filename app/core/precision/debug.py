"""Find what INT8 breaks and fix it: per-layer error analysis and automatic mixed precision.

Analysis runs the FP32 graph and a fully quantized Q/DQ graph on a few calibration images and
reports, for every quantized activation, its local error (that tensor before vs after its own
Q/DQ inside the INT8 graph: the quantization noise of that layer alone) and its accumulated error
(FP32 value vs the INT8 graph's dequantized value at that point), as SQNR in dB - the two
quantities ONNX Runtime's `qdq_loss_debug` defines, collected here as running sums so memory
does not grow with the number of images - plus weight SQNR from `qdq_loss_debug` and range
statistics. Compute blocks (a conv or matmul with its activation) are ranked worst first; the
search keeps the fewest leading entries of that ranking in float that meet an accuracy target.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from app.core.errors import CancelToken, UserError
from app.core.model.workspace import Workspace
from app.core.ort_session import cpu_session
from app.core.quant.block_sensitivity import (
    block_members,
    output_sensitivity,
    qdq_params,
    sqnr,
    tensor_owners,
)
from app.core.quant.calibration import CalibrationReader, latest_calibration, select_images
from app.core.quant.graph_rules import compute_blocks
from app.core.quant.quantize import make_int8
from app.core.quant.shift import unshifted
from app.core.quant.space_to_depth import comparable_float

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
HIST_BINS = 128
SENSITIVITY_IMAGES = 4


@dataclass
class TensorStats:
    name: str
    block: str  # compute node of the block this tensor belongs to ("" if none)
    op_type: str
    local_sqnr_db: float
    accumulated_sqnr_db: float
    min: float
    max: float
    p9999_abs: float
    channel_spread: float  # max/min per-channel |max| (1 = uniform), NCHW tensors only
    clip: tuple[float, float]  # the range the Q/DQ pair represents
    hist: list[int] = field(default_factory=list)
    hist_range: tuple[float, float] = (0.0, 0.0)


@dataclass
class BlockStats:
    block: str
    op_type: str
    nodes: list[str]
    score_db: float  # worst local SQNR over the block's tensors and weights
    weight_sqnr_db: float | None
    tensors: list[str]
    output_sqnr_db: float | None = None  # model output with only this block quantized


def removed_activations(
    fmodel: onnx.ModelProto, qmodel: onnx.ModelProto, names: list[str]
) -> dict[str, tuple[float, float]]:
    """Quantized tensors whose ReLU/Clip the quantizer dropped: name -> the clip it applied.

    ONNX Runtime's quantizer removes a ReLU or Clip after a conv and lets the Q's range do the
    clipping, so in the INT8 graph the tensor named like the activation's output holds the conv
    output, negatives included: measured as is, every value the ReLU zeroes counted as noise
    (local SQNR 0.5 dB on ResNet-8, whose INT8 top-1 equals FP32's)."""
    fprod = {o: n for n in fmodel.graph.node for o in n.output}
    qprod = {o: n for n in qmodel.graph.node for o in n.output}
    consts = {i.name: numpy_helper.to_array(i) for i in fmodel.graph.initializer}
    consts.update(
        {
            n.output[0]: numpy_helper.to_array(n.attribute[0].t)
            for n in fmodel.graph.node
            if n.op_type == "Constant" and n.attribute and n.attribute[0].type == 4
        }
    )
    out: dict[str, tuple[float, float]] = {}
    for name in names:
        f, q = fprod.get(name), qprod.get(name)
        if f is None or q is None or q.op_type == f.op_type:
            continue
        if f.op_type == "Relu":
            out[name] = (0.0, np.inf)
        elif f.op_type == "Clip":
            bounds = [-np.inf, np.inf]
            for attr in f.attribute:  # opset < 11 keeps min/max as attributes
                if attr.name in ("min", "max"):
                    bounds[attr.name == "max"] = attr.f
            for k, inp in enumerate(f.input[1:3]):
                if inp in consts:
                    bounds[k] = float(np.ravel(consts[inp])[0])
            out[name] = (bounds[0], bounds[1])
    return out


def _session(model: onnx.ModelProto, outputs: list[str]):
    model = onnx.ModelProto.FromString(model.SerializeToString())
    have = {o.name for o in model.graph.output}
    for name in outputs:
        if name not in have:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    return cpu_session(model)


def analyse_layers(
    ws: Workspace,
    images_dir: str | Path | None = None,
    *,
    target: str = "ort-cpu",
    count: int = 8,
    calibration: Path | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Per-tensor and per-block errors of the fully quantized graph (see module doc)."""
    from onnxruntime.quantization.qdq_loss_debug import compute_weight_error

    from app.core.quant.weight_matching import match_weights

    cancel = cancel or CancelToken()
    progress = progress or (lambda f, m: None)
    spec = ws.spec()
    calib = calibration or latest_calibration(ws)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        fmodel = comparable_float(spec.path)
        onnx.save(fmodel, str(float_path))
        qpath = Path(tmp) / "int8-all.onnx"
        progress(0.05, "quantizing every layer")
        make_int8(float_path, calib / "ranges.json", qpath, target, keep_float=[])
        qmodel = onnx.load(str(qpath))
        weight_match = match_weights(float_path, qpath)
        weight_err = compute_weight_error(weight_match)
    qp = qdq_params(qmodel)
    names = sorted(qp)
    removed = removed_activations(fmodel, qmodel, names)
    fsess = _session(fmodel, names)
    qsess = _session(qmodel, names + [qp[n]["dq"] for n in names])
    sums = {n: np.zeros(4) for n in names}  # float^2, (float-post)^2, pre^2, (pre-post)^2
    stats: dict[str, dict[str, Any]] = {
        n: {"min": np.inf, "max": -np.inf, "values": []} for n in names
    }
    if images_dir is None:
        import json

        files = [Path(p) for p in json.loads((calib / "meta.json").read_text())["images_used"]]
    else:
        files, _ = select_images(images_dir)
    files = files[:count]
    reader = CalibrationReader(spec, files, batch=1, cancel=cancel)
    qnames = [o.name for o in qsess.get_outputs()]
    fnames = [o.name for o in fsess.get_outputs()]
    done = 0
    kept_batches: list[np.ndarray] = []
    for batch in reader:
        cancel.check()
        if len(kept_batches) < SENSITIVITY_IMAGES:
            kept_batches.append(batch)
        fvals = dict(zip(fnames, fsess.run(None, {spec.input_name: batch})))
        qvals = dict(zip(qnames, qsess.run(None, {spec.input_name: batch})))
        for n in names:
            f, pre, post = fvals.get(n), qvals.get(n), qvals.get(qp[n]["dq"])
            if post is not None and "offset" in qp[n]:  # quantized shifted (`shift`)
                post = unshifted(post, qp[n]["offset"], qp[n]["pads"])
            if f is None or pre is None or post is None or f.shape != post.shape:
                continue
            f64, pre64, post64 = (a.astype(np.float64) for a in (f, pre, post))
            if n in removed:
                pre64 = np.clip(pre64, *removed[n])  # what the removed ReLU/Clip would output
            sums[n] += [
                (f64**2).sum(),
                ((f64 - post64) ** 2).sum(),
                (pre64**2).sum(),
                ((pre64 - post64) ** 2).sum(),
            ]
            s = stats[n]
            s["min"], s["max"] = min(s["min"], float(f.min())), max(s["max"], float(f.max()))
            s["values"].append(f)
        done += 1
        progress(0.1 + 0.8 * done / max(1, len(files)), f"analysed {done}/{len(files)} images")
    if done == 0:
        raise UserError("none of the analysis images could be read")
    owner = tensor_owners(fmodel)
    op_of = {n.name: n.op_type for n in fmodel.graph.node}
    tensors = [
        _tensor_stats(n, sums[n], stats[n], qp[n]["clip"], owner.get(n, ""), op_of)
        for n in names
        if stats[n]["values"]
    ]
    blocks = _block_stats(fmodel, tensors, weight_err)
    progress(0.9, "measuring each block's effect on the output")
    sens = output_sensitivity(
        fmodel,
        spec.input_name,
        [(b.block, b.tensors) for b in blocks],
        qp,
        weight_match,
        kept_batches,
        cancel,
        lambda f: progress(0.9 + 0.1 * f, "sensitivity"),
    )
    for b in blocks:
        b.output_sqnr_db = sens.get(b.block)
    blocks.sort(key=lambda b: b.output_sqnr_db if b.output_sqnr_db is not None else 1e9)
    progress(1.0, f"analysis of {done} images in {time.perf_counter() - t0:.1f} s")
    return {
        "target": target,
        "images": done,
        "seconds": round(time.perf_counter() - t0, 2),
        "calibration": calib.name,
        "tensors": [asdict(t) for t in sorted(tensors, key=lambda t: t.local_sqnr_db)],
        "blocks": [asdict(b) for b in blocks],
    }


def _tensor_stats(name, sums, s, clip, block, op_of) -> TensorStats:
    values = np.concatenate([v.ravel() for v in s["values"]])
    spread = 1.0
    first = s["values"][0]
    if first.ndim == 4 and first.shape[1] > 1:
        per_channel = np.max([np.abs(v).max(axis=(0, 2, 3)) for v in s["values"]], axis=0)
        nonzero = per_channel[per_channel > 0]
        spread = float(nonzero.max() / nonzero.min()) if nonzero.size else 1.0
    hist, edges = np.histogram(values, bins=HIST_BINS, range=(s["min"], s["max"] or 1.0))
    return TensorStats(
        name=name,
        block=block,
        op_type=op_of.get(block, ""),
        local_sqnr_db=round(sqnr(sums[2], sums[3]), 2),
        accumulated_sqnr_db=round(sqnr(sums[0], sums[1]), 2),
        min=s["min"],
        max=s["max"],
        p9999_abs=float(np.percentile(np.abs(values), 99.99)),
        channel_spread=round(spread, 1),
        clip=(float(clip[0]), float(clip[1])),
        hist=hist.tolist(),
        hist_range=(float(edges[0]), float(edges[-1])),
    )


def _block_stats(
    model, tensors: list[TensorStats], weight_err: dict[str, float]
) -> list[BlockStats]:
    by_block: dict[str, list[TensorStats]] = {}
    for t in tensors:
        if t.block:
            by_block.setdefault(t.block, []).append(t)
    nodes = {n.name: n for n in model.graph.node}
    members_of = block_members(model, {b: [t.name for t in ts] for b, ts in by_block.items()})
    out = []
    for block in compute_blocks(model):
        head = nodes[block[0]]
        weight = head.input[1] if len(head.input) > 1 else ""
        w_db = weight_err.get(weight)
        mine = by_block.get(block[0], [])
        scores = [t.local_sqnr_db for t in mine] + ([float(w_db)] if w_db is not None else [])
        if not scores:
            continue  # nothing of this block is quantized (float tail, head convs)
        members = members_of[block[0]]
        out.append(
            BlockStats(
                block[0],
                head.op_type,
                members,
                round(min(scores), 2),
                None if w_db is None else round(float(w_db), 2),
                [t.name for t in mine],
            )
        )
    return sorted(out, key=lambda b: b.score_db)
