"""Is INT8 faster here? Interleaved latency of graphs on a CPU runtime (ONNX Runtime's CPU
provider or OpenVINO), the CPU's integer dot-product features, and the sentence that tells the
user the truth about it.

Latency is measured, never assumed: whether INT8 pays off on a CPU depends on its instructions
(AVX512-VNNI / AVX-VNNI / AMX run 8-bit dot products in one step; plain AVX2 needs three) and on
the graph. Graphs are timed in turns inside one process, so load from other programs hits them
alike; the ratio of medians is what is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.core.timing import SAME_SPEED_BAND, SETTLE_S, in_turns, percentiles, speed_verdict

INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def int8_dot_support(flags: set[str] | None = None) -> dict[str, Any]:
    """Which 8-bit dot-product instructions this CPU has, for recording next to every figure."""
    flags = cpu_flags() if flags is None else flags
    found = [f for f in INT8_DOT_FLAGS if f in flags]
    return {"int8_dot": found, "vnni": any("vnni" in f for f in found), "avx2": "avx2" in flags}


def u8s8_saturates(flags: set[str] | None = None) -> bool:
    """True on x86 CPUs with AVX2 but no VNNI: ONNX Runtime's U8S8 kernels there add pairs of
    u8 x s8 products in 16 bits (VPMADDUBSW), which saturates unless weights use 7 bits."""
    support = int8_dot_support(flags)
    return support["avx2"] and not support["vnni"]


def cpu_session(path: str | Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


SPEED_BACKENDS = ("ort-cpu", "openvino-cpu")
ORT_FP32 = "fp32 @ort-cpu"  # what an INT8 graph for another CPU runtime is also timed against


def _runner_of(path: str | Path, threads: int, backend: str) -> Callable[[np.ndarray], Any]:
    """A function that runs the graph at `path` once on `backend` (no output checks: timing)."""
    if backend == "openvino-cpu":
        from app.core.openvino_session import compile_cpu, has_dynamic_input, read_model

        model = read_model(path)
        cache: dict[tuple[int, ...], Any] = {}

        def run(x: np.ndarray) -> Any:  # fixed to the feed's shape, as the runner does
            if x.shape not in cache:
                shapes = {0: list(x.shape)} if has_dynamic_input(model) else None
                cache[x.shape] = compile_cpu(model, threads, shapes).create_infer_request()
            return cache[x.shape].infer({0: x})

        return run
    session = cpu_session(path, threads)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


# With more than one thread, a graph's turn is a block: runs for SETTLE_S (`app.core.timing`)
# not counted, then BLOCK_RUNS counted.
BLOCK_RUNS = 20


def interleaved_latency(
    paths: Mapping[str, str | Path],
    feed: np.ndarray,
    *,
    seconds: float = 3.0,
    min_rounds: int = 5,
    max_rounds: int = 200,
    threads: int = 1,
    backend: str | Mapping[str, str] = "ort-cpu",
) -> dict[str, dict[str, float]]:
    """Latency percentiles (ms) of each graph on `backend` (one of SPEED_BACKENDS, or a mapping
    graph name -> backend to time runtimes against each other), run in turns for about `seconds`
    (at least `min_rounds` turns), so load from other programs hits them alike. One thread by
    default: on a shared machine two threads wait on each other whenever another program takes
    a core, which swamps the differences. With more threads a turn is a block of runs (see
    SETTLE_S), and `max_rounds` counts blocks."""
    backends = {k: backend if isinstance(backend, str) else backend[k] for k in paths}
    unknown = set(backends.values()) - set(SPEED_BACKENDS)
    if unknown:
        raise ValueError(f"no CPU timing for backend {sorted(unknown)}")
    runs = {k: _runner_of(p, threads, backends[k]) for k, p in paths.items()}
    for run in runs.values():  # warm-up: first runs allocate and pick kernels
        for _ in range(2):
            run(feed)
    block, settle = (1, 0.0) if threads == 1 else (BLOCK_RUNS, SETTLE_S)
    times: dict[str, list[float]] = {k: [] for k in runs}
    start = time.perf_counter()

    def timed(run: Callable[[np.ndarray], Any], got: list[float]) -> Callable[[], None]:
        def once() -> None:
            t0 = time.perf_counter()
            run(feed)
            got.append((time.perf_counter() - t0) * 1e3)

        return once

    def block_of(r: int) -> int:
        over = r >= max_rounds or (r >= min_rounds and time.perf_counter() - start > seconds)
        return 0 if over else block

    in_turns(
        [timed(run, times[k]) for k, run in runs.items()],
        [partial(run, feed) for run in runs.values()],
        block_of,
        settle,
    )
    return {k: {**percentiles(v), "runs": len(v)} for k, v in times.items()}


ORT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(float16)": np.float16}


def synthetic_feed(path: str | Path, size: list[int] | None = None) -> np.ndarray:
    """A random input for the graph's first input: batch 1, dynamic height/width from `size`
    (the preprocessing's [height, width]); pixel-like values 0..255."""
    inp = cpu_session(path, 1).get_inputs()[0]
    dims = [d if isinstance(d, int) and d > 0 else None for d in inp.shape]
    dims[0] = dims[0] or 1
    spatial = [i for i, d in enumerate(dims) if d is None]
    for i, value in zip(spatial, size or [], strict=False):
        dims[i] = value
    shape = [d or 1 for d in dims]
    dtype = ORT_DTYPES.get(inp.type, np.float32)
    data = np.random.default_rng(0).integers(0, 256, shape)
    return data.astype(dtype)


def measure_int8_speed(
    fp32_path: str | Path,
    int8_path: str | Path,
    size: list[int] | None = None,
    *,
    seconds: float = 3.0,
    name: str = "int8",
    others: Mapping[str, str | Path] | None = None,
    backend: str = "ort-cpu",
    exact: bool = False,
) -> dict[str, Any]:
    """The bounded timing step of `quantize`: INT8 against FP32 on this CPU (on `backend`, one of
    SPEED_BACKENDS), with a verdict.
    `others` (name -> graph) are timed in the same turns; their p50s come back under
    "others_p50_ms" (how `silu_choice` compares the two SiLU forms). `exact`: the graph computes
    what FP32 does (`fp32-prep`); its verdict says so (`timing.speed_verdict`)."""
    feed = synthetic_feed(fp32_path, size)
    graphs = {"fp32": fp32_path, name: int8_path, **(others or {})}
    backends = dict.fromkeys(graphs, backend)
    if backend != "ort-cpu":  # the FP32 the user would otherwise run: ONNX Runtime's, same turns
        graphs[ORT_FP32] = fp32_path
        backends[ORT_FP32] = "ort-cpu"
    lat = interleaved_latency(graphs, feed, seconds=seconds, backend=backends)
    entry = speed_entry(
        lat["fp32"]["p50"], lat[name]["p50"], lat[name]["runs"], name, backend, exact=exact
    )
    if ORT_FP32 in lat:
        entry["ort_fp32_p50_ms"] = lat[ORT_FP32]["p50"]
        entry["ort_fp32_faster"] = lat[ORT_FP32]["p50"] < lat[name]["p50"] * (1 - SAME_SPEED_BAND)
    return {
        **entry,
        **({"others_p50_ms": {k: lat[k]["p50"] for k in others}} if others else {}),
    }


def speed_entry(
    fp32_ms: float,
    int8_ms: float,
    runs: int,
    name: str = "int8",
    backend: str = "ort-cpu",
    *,
    exact: bool = False,
) -> dict[str, Any]:
    """`quantize`'s "speed" record of an INT8 graph timed at `int8_ms` against FP32's `fp32_ms`
    (p50s, 1 thread, this CPU, on `backend`)."""
    ratio = int8_ms / fp32_ms
    return {
        "backend": backend,
        "threads": 1,
        "fp32_p50_ms": fp32_ms,
        "int8_p50_ms": int8_ms,
        "ratio": round(ratio, 3),
        "runs": runs,
        "faster": ratio < 1.0 - SAME_SPEED_BAND,
        "verdict": speed_verdict(ratio, name, "fp32", backend, exact=exact),
        **int8_dot_support(),
    }


def speed_line(meta: dict[str, Any]) -> str | None:
    """One line on a built INT8 variant's speed against FP32 on this CPU (its "speed" record),
    for the CLI and the GUI; None when it was not timed."""
    speed = meta.get("speed")
    if not speed:
        return None
    vnni = "with" if speed.get("vnni") else "without"
    # three significant figures: a 0.19 ms classifier must not read "FP32 0.2 ms, int8 0.2 ms"
    line = (
        f"{speed['verdict']} (FP32 {speed['fp32_p50_ms']:.3g} ms, {meta.get('name', 'int8')} "
        f"{speed['int8_p50_ms']:.3g} ms, 1 thread, CPU {vnni} VNNI)"
    )
    ort_fp32 = speed.get("ort_fp32_p50_ms")
    if ort_fp32 is not None:
        line += (
            f"; but fp32 on ort-cpu is faster here ({ort_fp32:.3g} ms): prefer it"
            if speed.get("ort_fp32_faster")
            else f"; fp32 on ort-cpu: {ort_fp32:.3g} ms"
        )
    return line
