"""Device probe (not part of the app): ONNX Runtime's CUDA provider on YOLOX-Nano's
TensorRT-layout INT8 graph before and after activation shifting (QUANTIZE_VERSION 11 and 12),
with FP32 and FP16, timed in turns with I/O binding. Standalone: numpy and onnxruntime-gpu only,
so it runs on the offline GPU machine with nothing of the app installed.

    python3 gpu_shift_probe.py DIR    (DIR: fp32.onnx, fp16.onnx, int8-trt-before.onnx,
                                       int8-trt.onnx and input.npy, a preprocessed photo)

Prints JSON, then a table last.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = ("fp32", "fp16", "int8-trt-before", "int8-trt")
ROUNDS, RUNS, SETTLE_S = 10, 100, 0.1


def _sqnr(ref: np.ndarray, out: np.ndarray) -> float:
    ref, out = ref.astype(np.float64), out.astype(np.float64)
    return float(10 * np.log10((ref**2).sum() / max(((out - ref) ** 2).sum(), 1e-30)))


def main(folder: Path) -> int:
    import onnxruntime as ort

    x = np.load(folder / "input.npy")
    sessions, bindings = {}, {}
    for name in VARIANTS:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        cuda = ("CUDAExecutionProvider", {"use_tf32": 0})
        s = ort.InferenceSession(
            str(folder / f"{name}.onnx"), opts, providers=[cuda, "CPUExecutionProvider"]
        )
        binding = s.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        binding.bind_ortvalue_input(s.get_inputs()[0].name, value)
        for o in s.get_outputs():
            binding.bind_output(o.name, "cuda", 0)
        sessions[name], bindings[name] = s, (binding, value)
    outputs = {n: s.run(None, {s.get_inputs()[0].name: x})[0] for n, s in sessions.items()}
    for name, (binding, _) in bindings.items():
        for _ in range(50):
            sessions[name].run_with_iobinding(binding)
    times: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for _ in range(ROUNDS):
        for name, (binding, _) in bindings.items():
            session = sessions[name]
            settle = time.perf_counter() + SETTLE_S
            while time.perf_counter() < settle:
                session.run_with_iobinding(binding)
            for _ in range(RUNS):
                t0 = time.perf_counter()
                session.run_with_iobinding(binding)
                binding.synchronize_outputs()
                times[name].append((time.perf_counter() - t0) * 1e3)
    gpu = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    rows = [
        {
            "variant": n,
            "p50_ms": float(np.percentile(times[n], 50)),
            "p90_ms": float(np.percentile(times[n], 90)),
            "provider": sessions[n].get_providers()[0],
            "output_sqnr_db_vs_fp32": _sqnr(outputs["fp32"], outputs[n]),
        }
        for n in VARIANTS
    ]
    print(json.dumps({"gpu": gpu, "onnxruntime": ort.__version__, "rows": rows}, indent=1))
    print(
        f"GPU: {gpu}; onnxruntime-gpu {ort.__version__}; YOLOX-Nano 1x3x416x416, I/O binding, "
        f"no CUDA graph, use_tf32=0, {ROUNDS} rounds x {RUNS} runs in turns"
    )
    head = ("variant", "p50 ms", "p90 ms", "x fp32", "provider", "SQNR dB")
    print(f"{head[0]:18} {head[1]:>8} {head[2]:>8} {head[3]:>7} {head[4]:>24} {head[5]:>8}")
    base = rows[0]["p50_ms"]
    for r in rows:
        print(
            f"{r['variant']:18} {r['p50_ms']:8.3f} {r['p90_ms']:8.3f} {r['p50_ms'] / base:7.2f} "
            f"{r['provider']:>24} {r['output_sqnr_db_vs_fp32']:8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)))
