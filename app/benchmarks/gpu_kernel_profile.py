"""Which CUDA kernels one YOLOX-Nano inference launches, how long each kind takes, and how much
of the wall time is kernels at all: the question behind the FP32 1.1 ms target. Uses PyTorch's
profiler (CUPTI) only as a kernel tracer around the app's own ONNX Runtime runner, so it runs
only where torch is installed (the H100 machine has it; the app does not need it).

Usage: python -m app.benchmarks.gpu_kernel_profile --assets DIR --out DIR
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path


def _profile(runner, runs: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(50):
        runner.run_resident()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            runner.run_resident()
        torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - t0) * 1e3 / runs
    kinds: dict[str, list[float]] = collections.defaultdict(list)
    for ev in prof.events():
        if ev.device_type.name == "CUDA" and ev.device_time_total > 0:
            kinds[ev.name].append(ev.device_time_total / 1e3)
    total = sum(sum(v) for v in kinds.values()) / runs
    count = sum(len(v) for v in kinds.values()) / runs
    top = sorted(kinds.items(), key=lambda kv: -sum(kv[1]))[:25]
    return {
        "wall_ms_per_run": round(wall_ms, 4),
        "kernel_ms_per_run": round(total, 4),
        "kernels_per_run": round(count, 1),
        "top": [
            {
                "kernel": name[:110],
                "per_run": round(len(v) / runs, 1),
                "ms_per_run": round(sum(v) / runs, 4),
            }
            for name, v in top
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    import torch  # noqa: F401  (initialise CUDA/CUPTI before ONNX Runtime)

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
    fp16 = out / "yolox_nano_fp16.onnx"
    make_fp16(Path(spec.path), fp16)
    fp32_fused = fused_model_path(Path(spec.path), spec, out / "fused")
    fp16_fused = fused_model_path(fp16, spec, out / "fused")
    frame = read_image(list_images(assets / "images" / "coco-val-dev64" / "images")[0])
    feed = Preprocessor(spec.preprocess, fused=True)(frame)[0].copy()
    tf32_off = {"use_tf32": "0"}
    cases = {
        "fp32 tf32 off": (fp32_fused, tf32_off),
        "fp32 tf32 off, no max workspace": (
            fp32_fused,
            {**tf32_off, "cudnn_conv_use_max_workspace": "0"},
        ),
        "fp32 tf32 on": (fp32_fused, {}),
        "fp16": (fp16_fused, {}),
    }
    report: dict = {"device": device_info(), "cases": {}}
    for label, (model, opts) in cases.items():
        entry = {}
        for graph in (False, True):
            with OrtRunner(
                model, "cuda", provider_options=opts, strict=True, cuda_graph=graph, io_binding=True
            ) as r:
                timing = time_runner(r, feed, 500, 50)
                prof = _profile(r, args.runs)
            entry["cuda graph" if graph else "no graph"] = {
                "p50_ms": timing["latency_ms"]["p50"],
                "resident_p50_ms": timing.get("resident_ms", {}).get("p50"),
                **prof,
            }
            print(label, "graph" if graph else "no graph", flush=True)
        report["cases"][label] = entry
    (out / "kernel_profile.json").write_text(json.dumps(report, indent=2, default=float))
    print("\n== kernels per YOLOX-Nano inference (CUPTI via torch.profiler) ==")
    for label, entry in report["cases"].items():
        for mode, e in entry.items():
            print(
                f"{label:34s} {mode:10s} p50 {e['p50_ms']:.3f}  resident {e['resident_p50_ms']}"
                f"  wall/run {e['wall_ms_per_run']:.3f}  kernels {e['kernels_per_run']}"
                f"  kernel time {e['kernel_ms_per_run']:.3f} ms"
            )
    for label in report["cases"]:
        print(f"\n-- {label}, no graph: top kernels (ms per run, count per run)")
        for k in report["cases"][label]["no graph"]["top"]:
            print(f"{k['ms_per_run']:8.4f} {k['per_run']:6.1f}  {k['kernel']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
