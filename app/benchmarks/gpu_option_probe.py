"""Try CUDA provider options on the app's YOLOX-Nano graphs, in one short run, so a setting is
adopted only after it was measured: latency (end to end and device-resident) of the fused FP32
(TF32 off) and FP16 graphs per option set, interleaved twice, and for FP32 the largest score
difference against the CPU. The full report (gpu_report) stays as it is; this is the place for
a question like "does `fuse_conv_bias` pay here?". Prints a table last and writes JSON.

Usage: python -m app.benchmarks.gpu_option_probe --assets DIR --out DIR \
          [--try fuse_conv_bias=1 --try cudnn_conv_use_max_workspace=0,fuse_conv_bias=1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def parse_options(text: str) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'}; '' -> {} (the app's defaults)."""
    pairs = [p for p in text.split(",") if p.strip()]
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--try wants key=value[,key=value], got '{pair}'")
        out[key.strip()] = value.strip()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--try", dest="tries", action="append", default=[], metavar="K=V[,K=V]")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of this script anywhere")
    args = ap.parse_args()
    dev = args.device
    option_sets = [{}] + [parse_options(t) for t in args.tries]

    from app.backends.onnxrt import OrtRunner
    from app.core.eval.bench import device_info, time_runner
    from app.core.frames.graph_fusion import fused_model_path
    from app.core.frames.imageio import read_image
    from app.core.frames.preprocess import Preprocessor
    from app.core.frames.sources import list_images
    from app.core.model.inspection import inspect_model
    from app.core.quant.quantize import make_fp16

    assets, out = Path(args.assets), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = inspect_model(assets / "models" / "yolox-nano-coco")
    fp32 = Path(spec.path)
    fp16 = out / "yolox_nano_fp16.onnx"
    make_fp16(fp32, fp16)
    graphs = {
        "fp32": (fused_model_path(fp32, spec, out / "fused"), {"use_tf32": "0"}),
        "fp16": (fused_model_path(fp16, spec, out / "fused"), {}),
    }
    photos = list_images(assets / "images" / "coco-val-dev64" / "images")[:8]
    feeds = [Preprocessor(spec.preprocess, fused=True)(read_image(p))[0].copy() for p in photos]

    def provider(base: dict, extra: dict) -> dict:
        return {**base, **extra} if dev != "cpu" else {}

    report: dict = {"device": device_info(), "command": " ".join(sys.argv), "rows": []}
    cpu_scores = []
    with OrtRunner(graphs["fp32"][0], "cpu") as ref:
        cpu_scores = [ref.infer(f)[0][0][:, 4] for f in feeds]

    def measure(model: Path, opts: dict, numerics: bool) -> dict:
        with OrtRunner(model, dev, provider_options=opts, strict=True, cuda_graph=True) as r:
            res = time_runner(r, feeds[0], args.iterations, 50)
            diff = None
            if numerics:
                diff = max(
                    float(np.abs(r.infer(f)[0][0][:, 4] - c).max())
                    for f, c in zip(feeds, cpu_scores, strict=True)
                )
        return {
            "p50_ms": res["latency_ms"]["p50"],
            "p99_ms": res["latency_ms"]["p99"],
            "resident_p50_ms": res.get("resident_ms", {}).get("p50"),
            "max_score_diff_vs_cpu": diff,
        }

    for round_no in range(2):  # interleaved: the spread between rounds is part of the figure
        for extra in option_sets:
            for variant, (model, base) in graphs.items():
                opts = provider(base, extra)
                row = {"round": round_no, "variant": variant, "options": extra}
                try:
                    row.update(measure(model, opts, variant == "fp32"))
                except Exception as exc:  # an option cuDNN refuses is a finding, not the end
                    row["error"] = str(exc).strip().splitlines()[0][:300]
                report["rows"].append(row)
                print(row, flush=True)

    (out / "gpu_option_probe.json").write_text(json.dumps(report, indent=2, default=float))
    print("\n== device ==")
    for k, v in report["device"].items():
        print(f"{k:12s} {v}")
    print(f"\n== YOLOX-Nano fused graphs, CUDA graph, p50 of {args.iterations} (ms) ==")
    heads = ("e2e p50", "p99", "resident", "|d| cpu")
    print(f"{'variant':8s} {'options':48s} " + " ".join(f"{h:>9s}" for h in heads))
    for row in report["rows"]:
        label = ",".join(f"{k}={v}" for k, v in row["options"].items()) or "(app default)"
        if "error" in row:
            print(f"{row['variant']:8s} {label:48s} failed: {row['error'][:120]}")
            continue
        diff = row["max_score_diff_vs_cpu"]
        print(
            f"{row['variant']:8s} {label:48s} {row['p50_ms']:9.3f} {row['p99_ms']:9.3f} "
            f"{row['resident_p50_ms'] or 0:9.3f} {'' if diff is None else f'{diff:.1e}':>9s}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
