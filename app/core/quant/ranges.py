"""Collect activation ranges for calibration quickly, with ONNX Runtime's calibration math.

ONNX Runtime's stock Entropy/Percentile calibrators histogram every float tensor in the graph and
compute the entropy threshold in O(bins^2) Python, which took 90-107 s for 128 images at 416x416
on a 2-core machine. Written by hand here, because no library does it faster:
  * only the tensors that quantization will actually use are collected (ORT's own selection);
  * pass 1 records each tensor's min/max with ReduceMin/ReduceMax inside the graph (that alone
    is the MinMax result);
  * pass 2 bins the same tensors over the now-known range inside the graph (uint16 bin indices)
    on the inputs kept in memory, and numpy only counts them;
  * thresholds come from ORT's HistogramCollector (percentile, distribution) or a vectorised port
    of its entropy search (same p/q construction, smoothing and KL divergence).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx

from app.core.errors import CancelToken, UserError
from app.core.ort_session import cpu_session

log = logging.getLogger(__name__)

NUM_BINS = 2048
NUM_QUANTIZED_BINS = 128
HIST_MEMORY_LIMIT = 1536 * 1024**2  # inputs kept for the histogram pass; beyond it, a subsample
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Share of the after-reading phase the histogram pass takes (the thresholds take the rest),
# as measured on YOLOX-Nano: the entropy search is 90% of it, the other methods' thresholds ~0.
HIST_SHARE = {"entropy": 0.1}


def ranges_of(data: Any) -> dict[str, tuple[float, float]]:
    """{tensor: (lowest, highest)} of ONNX Runtime's TensorsData (scalars or 1-element arrays)."""
    return {
        name: (
            float(np.asarray(t.range_value[0]).ravel()[0]),
            float(np.asarray(t.range_value[1]).ravel()[0]),
        )
        for name, t in data.items()
    }


def read_ranges(path: Path) -> tuple[Any, dict[str, tuple[float, float]]]:
    """(calibration method, `ranges_of` it) of a ranges file ONNX Runtime wrote; a UserError
    naming the file when it cannot be read."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    try:
        data = load_tensors_data(path)
        return data.calibration_method, ranges_of(data)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"{path}: calibration ranges unreadable ({exc}); calibrate again") from exc


def load_with_shapes(model_path: Path) -> onnx.ModelProto:
    """The model with inferred value_info, in memory. ORT's load_model_with_shape_infer writes a
    `-inferred.onnx` beside the user's model, which fails in read-only folders, collides between
    two jobs and, if interrupted, leaves a second model in the user's folder."""
    from onnxruntime.quantization.quant_utils import add_infer_metadata

    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    add_infer_metadata(model)
    return model


def tensors_for_target(model_path: Path, op_types: Iterable[str] | None = None) -> list[str]:
    """The float tensors ORT would calibrate for these op types (ORT's own selection rule)."""
    from onnxruntime.quantization.calibrate import MinMaxCalibrater

    model = load_with_shapes(Path(model_path))
    selector = MinMaxCalibrater.__new__(MinMaxCalibrater)
    selector.op_types_to_calibrate = list(op_types) if op_types else None
    tensors, _ = selector.select_tensors_to_calibrate(model)
    return sorted(tensors)


def compute_part_tensors(model_path: Path) -> list[str]:
    """The tensors calibration collects: ORT's selection (`tensors_for_target`) less those the
    float tail writes (`graph_rules.tail_tensors`: decoding, NMS and what follows it), which
    stay float in every INT8 graph."""
    from app.core.quant.graph_rules import name_nodes, tail_tensors

    tail = tail_tensors(name_nodes(onnx.load(str(model_path), load_external_data=False)))
    return [t for t in tensors_for_target(model_path) if t not in tail]


def _minmax_model(model: onnx.ModelProto, tensors: list[str]) -> onnx.ModelProto:
    """The graph plus a ReduceMin and ReduceMax per tensor as its only outputs: the reductions
    run inside ONNX Runtime, so no activation is copied out to Python."""
    from onnx import helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.graph.output[:]
    for k, name in enumerate(tensors):
        for op in ("ReduceMin", "ReduceMax"):
            out = f"__calib{k}_{op}"
            model.graph.node.append(helper.make_node(op, [name], [out], keepdims=0))
            model.graph.output.append(
                helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, [])
            )
    return model


def _binning_model(
    model: onnx.ModelProto, tensors: list[str], amax: dict[str, float], bins: int
) -> onnx.ModelProto:
    """The graph plus, per tensor, its histogram bin index as uint16 (x + amax) * bins / 2amax,
    clipped: ONNX Runtime does the element-wise work on its threads; numpy only counts."""
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.graph.output[:]
    f32 = np.float32
    for k, name in enumerate(tensors):
        thr = max(amax[name], 1e-12)
        pre = f"__bin{k}"
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(thr, f32), pre + "_off"),
                numpy_helper.from_array(np.array(bins / (2 * thr), f32), pre + "_mul"),
                numpy_helper.from_array(np.array(0, f32), pre + "_lo"),
                numpy_helper.from_array(np.array(bins - 1, f32), pre + "_hi"),
            ]
        )
        model.graph.node.extend(
            [
                helper.make_node("Add", [name, pre + "_off"], [pre + "_a"]),
                helper.make_node("Mul", [pre + "_a", pre + "_mul"], [pre + "_m"]),
                helper.make_node("Clip", [pre + "_m", pre + "_lo", pre + "_hi"], [pre + "_c"]),
                helper.make_node("Cast", [pre + "_c"], [pre], to=onnx.TensorProto.UINT16),
            ]
        )
        model.graph.output.append(helper.make_tensor_value_info(pre, onnx.TensorProto.UINT16, None))
    return model


def collect_ranges(
    model_path: Path,
    input_name: str,
    batches: Iterable[np.ndarray],
    method: str,
    tensors: list[str],
    *,
    percentile: float = 99.999,
    on_batch: Callable[[], None] | None = None,
    on_ranges: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
    threads: int | None = None,
) -> Any:
    """Ranges (ORT `TensorsData`) of `tensors` over `batches` with the chosen method.

    `on_batch` is called after each batch read; `on_ranges(fraction, what)` through the work
    after the last one (the histogram pass and the thresholds), which is most of a Percentile
    or Entropy calibration's time and would otherwise look like a hang.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    cancel = cancel or CancelToken()
    on_ranges = on_ranges or (lambda f, m: None)
    base = load_with_shapes(Path(model_path))
    opset = max(o.version for o in base.opset_import if o.domain in ("", "ai.onnx"))
    sess = cpu_session(_minmax_model(base, tensors), threads=threads)
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    kept: list[np.ndarray] = []
    kept_bytes = 0
    seen = 0
    for batch in batches:
        cancel.check()
        values = sess.run(None, {input_name: batch})
        for k, name in enumerate(tensors):
            lo[name] = min(lo[name], float(values[2 * k]))
            hi[name] = max(hi[name], float(values[2 * k + 1]))
        seen += batch.shape[0]
        if method != "minmax" and kept_bytes + batch.nbytes <= HIST_MEMORY_LIMIT:
            kept.append(batch)
            kept_bytes += batch.nbytes
        if on_batch:
            on_batch()
    if seen == 0:
        return TensorsData(CalibrationMethod.MinMax, {})
    f32 = np.float32
    if method == "minmax":
        return TensorsData(CalibrationMethod.MinMax, {t: (f32(lo[t]), f32(hi[t])) for t in tensors})
    if sum(b.shape[0] for b in kept) < seen:
        log.info("histograms from the first %d of %d images (memory limit)", len(kept), seen)
    # One symmetric histogram with twice the bins serves every method: adjacent pairs give the
    # signed 2048-bin histogram, and folding it at zero gives the |x| histogram (same edges).
    amax = {t: max(abs(lo[t]), abs(hi[t])) for t in tensors}
    fine = {t: np.zeros(2 * NUM_BINS, np.int64) for t in tensors}
    share = HIST_SHARE.get(method, 0.95)
    on_ranges(0.0, "histograms")  # building the binning session takes a while on its own
    if opset >= 11:  # Clip takes min/max as inputs from opset 11
        binning = cpu_session(_binning_model(base, tensors, amax, 2 * NUM_BINS), threads=threads)
        for i, batch in enumerate(kept):
            cancel.check()
            for name, idx in zip(tensors, binning.run(None, {input_name: batch})):
                fine[name] += np.bincount(idx.ravel(), minlength=2 * NUM_BINS)
            on_ranges(share * (i + 1) / len(kept), "histograms")
    else:
        plain = onnx.ModelProto.FromString(base.SerializeToString())
        del plain.graph.output[:]
        plain.graph.output.extend(
            onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors
        )
        psess = cpu_session(plain, threads=threads)
        for i, batch in enumerate(kept):
            cancel.check()
            for name, v in zip(tensors, psess.run(None, {input_name: batch})):
                fine[name] += _hist(v, -amax[name], amax[name], 2 * NUM_BINS)
            on_ranges(share * (i + 1) / len(kept), "histograms")
    hists = {t: h.reshape(NUM_BINS, 2).sum(1) for t, h in fine.items()}
    abs_hists = {t: h[NUM_BINS:] + h[:NUM_BINS][::-1] for t, h in fine.items()}
    out: dict[str, Any] = {}
    kind = None
    # thresholds a slice of tensors at a time, so this last step reports progress too
    step = max(1, len(tensors) // 10)
    for start in range(0, max(1, len(tensors)), step):
        cancel.check()
        wanted = tensors[start : start + step]
        part = _thresholds(method, wanted, lo, hi, amax, hists, abs_hists, percentile)
        kind = part.calibration_method
        out.update(dict(part.data.items()))
        done = min(len(tensors), start + step) / max(1, len(tensors))
        on_ranges(share + (1 - share) * done, "thresholds")
    return TensorsData(kind, out)


def _thresholds(method, wanted, lo, hi, amax, hists, abs_hists, percentile):
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        HistogramCollector,
        TensorsData,
    )

    f32 = np.float32
    if method == "entropy":
        from concurrent.futures import ThreadPoolExecutor

        def one(t: str) -> tuple[str, tuple]:
            edges = np.linspace(-amax[t], amax[t], NUM_BINS + 1, dtype=f32)
            t_lo, t_hi = entropy_threshold(hists[t], edges, lo[t], hi[t])
            return t, (f32(t_lo), f32(t_hi), hists[t], edges)

        # numpy releases the GIL in the big array operations: the KL searches run side by side
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            out = dict(pool.map(one, wanted))
        return TensorsData(CalibrationMethod.Entropy, out)
    if method == "percentile":
        collector = HistogramCollector("percentile", True, NUM_BINS, None, percentile, None)
        collector.histogram_dict = {
            t: (
                abs_hists[t],
                np.linspace(0, amax[t], NUM_BINS + 1, dtype=f32),
                f32(lo[t]),
                f32(hi[t]),
            )
            for t in wanted
        }
        with contextlib.redirect_stdout(io.StringIO()):  # ORT prints per-tensor chatter
            return TensorsData(CalibrationMethod.Percentile, collector.compute_percentile())
    if method == "distribution":
        collector = HistogramCollector("distribution", False, NUM_BINS, None, None, "same")
        collector.histogram_dict = {
            t: (
                hists[t],
                np.linspace(-amax[t], amax[t], NUM_BINS + 1, dtype=f32),
                f32(lo[t]),
                f32(hi[t]),
                f32(amax[t]),
            )
            for t in wanted
        }
        with contextlib.redirect_stdout(io.StringIO()):
            return TensorsData(CalibrationMethod.Distribution, collector.compute_distribution())
    raise UserError(f"unknown calibration method '{method}'")


def entropy_threshold(
    hist: np.ndarray,
    edges: np.ndarray,
    lo: float,
    hi: float,
    quantized_bins: int = NUM_QUANTIZED_BINS,
    eps: float = 0.0001,
) -> tuple[float, float]:
    """ORT's HistogramCollector.get_entropy_threshold with every KL candidate evaluated at once.

    Same construction as ORT: p folds the outliers into its end bins; q spreads the merged bins
    of the unfolded slice over each block's non-empty positions, truncated to integers; both are
    smoothed with ORT's epsilon rule; the candidate with the smallest KL divergence wins. ORT
    loops in Python, O(bins^2) per tensor (0.77 s each at 2048 bins); this is one 2-D pass.
    """
    hist = hist.astype(np.int64)
    nb = hist.size
    zero, nq = nb // 2, quantized_bins
    cand = np.arange(nq // 2, zero + 1)
    start, stop = zero - cand, np.minimum(zero + cand + 1, nb)
    length, n_cand = stop - start, cand.size
    csum = np.concatenate([[0], np.cumsum(hist)])
    col = np.arange(nb)[None, :]
    valid = col < length[:, None]
    rows = np.arange(n_cand)
    p = np.where(valid, hist[np.minimum(start[:, None] + col, nb - 1)], 0)
    p[rows, 0] += csum[start]
    p[rows, length - 1] += csum[-1] - csum[stop]
    nonzero = (p != 0) & valid
    cnz = np.concatenate([np.zeros((n_cand, 1), np.int64), np.cumsum(nonzero, 1)], 1)
    merge = length // nq
    j = np.arange(nq)[None, :]
    a = start[:, None] + j * merge[:, None]
    merged = csum[a + merge[:, None]] - csum[a]
    merged[:, -1] += csum[stop] - csum[start + nq * merge]
    norm = cnz[rows[:, None], (j + 1) * merge[:, None]] - cnz[rows[:, None], j * merge[:, None]]
    with np.errstate(divide="ignore", invalid="ignore"):
        qv = np.where(norm != 0, np.trunc(merged / np.where(norm == 0, 1, norm)), 0).astype(
            np.int64
        )
    block = col // np.maximum(merge[:, None], 1)
    in_q = (col < nq * merge[:, None]) & valid
    q = np.where(in_q, qv[rows[:, None], np.minimum(block, nq - 1)], 0)

    def smooth(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        is_zero, is_nonzero = (x == 0) & valid, (x != 0) & valid
        n_nonzero, n_zero = is_nonzero.sum(1), is_zero.sum(1)
        eps1 = (eps * n_zero / np.maximum(n_nonzero, 1)).astype(np.float64)
        y = (
            x.astype(np.float32)
            + (eps * is_zero).astype(np.float32)
            + (-eps1[:, None] * is_nonzero).astype(np.float32)
        )
        return np.where(valid, y, 0).astype(np.float32), n_nonzero == 0

    ps, bad_p = smooth(p)
    qs, bad_q = smooth(q)
    pk = ps / ps.sum(1, keepdims=True)
    qk = qs / qs.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(valid, pk * np.log(pk / qk), 0)
        terms = np.where(valid & ~((pk > 0) & (qk > 0)), np.inf, terms)
    kl = terms.sum(1).astype(np.float32).astype(np.float64)
    kl[bad_p | bad_q] = np.inf
    best = int(np.argmin(kl))
    return max(float(edges[start[best]]), lo), min(float(edges[stop[best]]), hi)


def _hist(x: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Uniform histogram over [lo, hi] for graphs too old for in-graph binning (opset < 11)."""
    if hi <= lo:
        out = np.zeros(bins, np.int64)
        out[bins // 2] = x.size
        return out
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 1)
    # calcHist drops values outside [lo, hi); widen by a hair so the maximum lands in the last bin
    counts = cv2.calcHist([flat], [0], None, [bins], [lo, hi + (hi - lo) * 1e-6]).ravel()
    return counts.astype(np.int64)
