"""Issue 17, measured and not adopted: per-channel uint8 conv outputs in the ort-cpu layout.

The ort-cpu layout's largest loss is the rounding of the uint8 outputs ONNX Runtime's QLinearConv
must write, with one scale for all channels (session 14: with those outputs float, pool / video
agreement 95.1 / 91.8 against 92.8 / 88.2). QLinearConv takes one output scale, but a per-channel
one can be had exactly where the output is read only through a DequantizeLinear (the float SiLU,
`app.core.quant.silu`): channel c's weight scale is multiplied by a_c = S / S_c and its bias becomes
a_c b_c + (Z_c - Z) S, so the scalar Q (S, Z) writes round(y_c / S_c) + Z_c, which a per-axis
DequantizeLinear (S_c, Z_c) reads back. [lo_c, hi_c] is the channel's percentile range on the
calibration images (per-channel histograms over the tensor's calibrated range), widened to hold 0.

The catch is speed: ONNX Runtime's per-axis DequantizeLinear is far slower than its per-tensor one,
and the other form measured (per-tensor DequantizeLinear + a per-channel BatchNormalization) adds a
pass. This script builds both on the issue-17 protocol's workspace (`app.benchmarks.int8_unseen`),
and, to see whether a few convs carry the gain, the BatchNormalization form on only the N convs
whose local rounding noise drops most (`--subsets N,...`); it scores them on the protocol's four
folders and times them against FP32 and the default `int8` in turns.

    python -m app.benchmarks.channel_outputs --assets ../shared/assets [--workdir D] [--json F]
        [--subsets 12,25]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from app.benchmarks.int8_unseen import (
    print_report,
    protocol_folders,
    score,
    summary,
    yolox_workspace,
)
from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.model.node_order import sort_nodes
from app.core.ort_session import cpu_session
from app.core.quant.equalize_ranges import calibration_inputs
from app.core.quant.graph_rules import consumers_of
from app.core.quant.speed import interleaved_latency, synthetic_feed

BINS = 1024
PERCENTILE = 99.9999  # per channel; chosen on the tuning rows among 99.99 / 99.999 / 99.9999
MAX_GAIN = 64.0  # a channel's scale is at least the tensor's / MAX_GAIN (a near-constant channel)


def output_sites(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Convs whose output Q is read only by DequantizeLinears that feed float QuickGelus."""
    users = consumers_of(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    sites = []
    for conv in model.graph.node:
        if conv.op_type != "Conv" or len(conv.input) < 3:
            continue
        q = users.get(conv.output[0], [])
        if len(q) != 1 or q[0].op_type != "QuantizeLinear":
            continue
        dqs = users.get(q[0].output[0], [])
        readers = [r for d in dqs for r in users.get(d.output[0], [])]
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
            continue
        if not readers or any(r.op_type != "QuickGelu" for r in readers):
            continue
        if all(producer.get(i) is not None for i in conv.input[1:3]):
            sites.append(conv)
    return sites


def output_ranges(qmodel: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """{conv output: (lo, hi)} of every `output_sites` conv: the uint8 range its scalar Q holds."""
    users = consumers_of(qmodel)
    inits = {i.name: i for i in qmodel.graph.initializer}
    out = {}
    for conv in output_sites(qmodel):
        q = users[conv.output[0]][0]
        scale = float(numpy_helper.to_array(inits[q.input[1]]))
        zero = int(numpy_helper.to_array(inits[q.input[2]]))
        out[conv.output[0]] = (-zero * scale, (255 - zero) * scale)
    return out


def channel_histograms(
    source: Path, tensors: dict[str, tuple[float, float]], input_name: str, batches: list
) -> dict[str, np.ndarray]:
    """Per-channel histograms (channels x BINS) of `tensors` ({name: (lo, hi)}) of the float
    graph over `batches`; values outside [lo, hi] land in the end bins."""
    probe = onnx.load(str(source))
    names = list(tensors)
    del probe.graph.output[:]
    probe.graph.output.extend(
        helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in names
    )
    session = cpu_session(probe)
    hist: dict[str, np.ndarray] = {}
    for batch in batches:
        for name, value in zip(names, session.run(None, {input_name: batch})):
            lo, hi = tensors[name]
            channels = value.shape[1]
            flat = np.moveaxis(value, 1, 0).reshape(channels, -1)
            idx = np.clip(((flat - lo) / (hi - lo) * BINS).astype(np.int64), 0, BINS - 1)
            idx += (np.arange(channels) * BINS)[:, None]
            counts = np.bincount(idx.ravel(), minlength=channels * BINS).reshape(channels, BINS)
            hist[name] = counts if name not in hist else hist[name] + counts
    return hist


def channel_ranges(
    counts: np.ndarray, lo: float, hi: float, percentile: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel [lo_c, hi_c] at `percentile` from `channel_histograms`, widened to hold 0."""
    cdf = np.cumsum(counts, 1, dtype=np.float64)
    cdf /= np.maximum(cdf[:, -1:], 1.0)
    edges = lo + (hi - lo) * np.arange(BINS + 1) / BINS
    low = np.argmax(cdf > (100.0 - percentile) / 100.0, 1)
    high = np.minimum(np.argmax(cdf >= percentile / 100.0 - 1e-12, 1), BINS - 1)
    return np.minimum(edges[low], 0.0), np.maximum(edges[high + 1], 0.0)


def per_channel_outputs(
    qmodel: onnx.ModelProto, hist: dict[str, np.ndarray], percentile: float, form: str
) -> int:
    """Rewrite `qmodel` in place (see the module doc); `form` "axis" (per-axis DQ) or "bn"
    (per-tensor DQ + BatchNormalization). Returns the number of convs rewritten."""
    inits = {i.name: i for i in qmodel.graph.initializer}
    producer = {o: n for n in qmodel.graph.node for o in n.output}
    users = consumers_of(qmodel)

    def value(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name]).astype(np.float64)

    def put(name: str, array: np.ndarray) -> None:
        tensor = numpy_helper.from_array(array, name)
        if name in inits:
            inits[name].CopyFrom(tensor)
        else:
            qmodel.graph.initializer.append(tensor)
            inits[name] = tensor

    added: list[onnx.NodeProto] = []
    sites = [c for c in output_sites(qmodel) if c.output[0] in hist]
    for conv in sites:
        t = conv.output[0]
        q = users[t][0]
        scale, zero = float(value(q.input[1])), int(value(q.input[2]))
        lo_c, hi_c = channel_ranges(hist[t], -zero * scale, (255 - zero) * scale, percentile)
        s_c = np.maximum((hi_c - lo_c) / 255.0, scale / MAX_GAIN)
        z_c = np.clip(np.round(-lo_c / s_c), 0, 255)
        gain = scale / s_c
        x_dq, w_dq, b_dq = (producer[i] for i in conv.input[:3])
        w_scale = value(w_dq.input[1]) * gain
        bias = value(b_dq.input[0]) * value(b_dq.input[1]) * gain + (z_c - zero) * scale
        b_scale = float(value(x_dq.input[1])) * w_scale
        put(w_dq.input[1], w_scale.astype(np.float32))
        put(b_dq.input[1], b_scale.astype(np.float32))
        put(b_dq.input[0], np.round(bias / b_scale).astype(np.int32))
        for k, dq in enumerate(users[q.output[0]]):
            if form == "axis":
                put(f"{t}_pc_scale", s_c.astype(np.float32))
                put(f"{t}_pc_zero", z_c.astype(np.uint8))
                dq.input[1], dq.input[2] = f"{t}_pc_scale", f"{t}_pc_zero"
                dq.attribute.append(helper.make_attribute("axis", 1))
                continue
            out, mid = dq.output[0], f"{dq.output[0]}_per_tensor"
            dq.output[0] = mid
            names = [f"{t}_bn{k}_{p}" for p in ("scale", "bias", "mean", "var")]
            channels = len(s_c)
            for name, v in zip(
                names, [s_c / scale, s_c * (zero - z_c), np.zeros(channels), np.ones(channels)]
            ):
                put(name, v.astype(np.float32))
            added.append(helper.make_node("BatchNormalization", [mid, *names], [out], epsilon=0.0))
    if added:  # each after its DequantizeLinear: appended, then sorted by the checker's order
        qmodel.graph.node.extend(added)
        sort_nodes(qmodel)
    onnx.checker.check_model(qmodel)
    return len(sites)


def noise_gain_db(counts: np.ndarray, lo: float, hi: float, percentile: float) -> float:
    """How much a conv output's rounding noise drops with per-channel scales (dB, channels
    weighted alike): the tensor's step squared against the mean of the channels' steps squared."""
    scale = (hi - lo) / 255.0
    lo_c, hi_c = channel_ranges(counts, lo, hi, percentile)
    steps = np.maximum((hi_c - lo_c) / 255.0, scale / MAX_GAIN)
    return float(10 * np.log10(scale**2 / np.mean(steps**2)))


def build(ws: Any, calibration: Path, percentile: float, subsets: list[int]) -> dict[str, int]:
    """`int8-pcout` (per-axis DQ), `int8-pcout-bn` and `int8-pc{N}-bn` for each N in `subsets`
    (the N convs of largest `noise_gain_db`) from the workspace's `int8`."""
    spec = ws.spec()
    tensors = output_ranges(onnx.load(str(ws.variant_path("int8"))))
    batches, _ = calibration_inputs(spec, calibration / "ranges.json")
    hist = channel_histograms(Path(spec.path), tensors, spec.input_name, batches)
    gains = {t: noise_gain_db(hist[t], *tensors[t], percentile) for t in tensors}
    ranked = sorted(gains, key=lambda t: -gains[t])
    builds = [("int8-pcout", "axis", hist), ("int8-pcout-bn", "bn", hist)]
    builds += [(f"int8-pc{n}-bn", "bn", {t: hist[t] for t in ranked[:n]}) for n in subsets]
    done = {}
    base = ws.variant_meta("int8") or {}
    for name, form, chosen in builds:
        model = onnx.load(str(ws.variant_path("int8")))
        done[name] = per_channel_outputs(model, chosen, percentile, form)
        onnx.save(model, str(ws.variant_path(name)))
        keep = {k: v for k, v in base.items() if k not in ("sha256", "name", "key")}
        ws.record_variant(name, {**keep, "channel_outputs": {"form": form, "convs": done[name]}})
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--workdir", help="the protocol's workspaces (int8_unseen's --workdir)")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--seconds", type=float, default=30.0, help="timing per thread count")
    ap.add_argument("--percentile", type=float, default=PERCENTILE)
    ap.add_argument("--subsets", default="12,25", help="also only the N convs of most gain")
    args = ap.parse_args(argv)
    setup_logging(False)
    assets = Path(args.assets)
    subsets = [int(n) for n in args.subsets.split(",") if n.strip()]
    names = ["fp32", "int8", "int8-pcout", "int8-pcout-bn", *(f"int8-pc{n}-bn" for n in subsets)]
    report: dict[str, Any] = {"device": device_info(), "percentile": args.percentile}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        ws, calibration = yolox_workspace(assets, work)
        report["convs_rewritten"] = build(ws, calibration, args.percentile, subsets)
        results = score(ws, names, protocol_folders(assets, work))
        report["images"] = {role: r["images"] for role, r in results.items()}
        report["summary"] = summary(results)
        spec = ws.spec()
        paths = {n: spec.path if n == "fp32" else ws.variant_path(n) for n in names}
        feed = synthetic_feed(spec.path, [416, 416])
        timing = {}
        for threads in (1, 2):
            lat = interleaved_latency(paths, feed, seconds=args.seconds, threads=threads)
            timing[threads] = {n: lat[n]["p50"] for n in names}
        report["p50_ms"] = timing
    save_json(args.json_out, report)
    print_report(
        {
            **report,
            "variant_meta": {
                n: f"{c} conv outputs per channel" for n, c in report["convs_rewritten"].items()
            },
        }
    )
    rows = [
        (n, timing[1][n], round(timing[1][n] / timing[1]["fp32"], 3), timing[2][n],
         round(timing[2][n] / timing[2]["fp32"], 3))
        for n in names
    ]  # fmt: skip
    print("ONNX Runtime CPU, variants timed in turns, p50 ms (synthetic 416x416 input)")
    print(table(["variant", "1 thr ms", "x fp32", "2 thr ms", "x fp32"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
