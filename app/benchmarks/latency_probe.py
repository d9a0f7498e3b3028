"""Re-time graphs built elsewhere: every .onnx in each folder (one of them `fp32.onnx`) runs in
turns on ONNX Runtime CPU with 1 and 2 threads, and ONNX Runtime's profiler splits `fp32` and
`int8` into time per operator type (on --profile-threads threads). Made for machines that only
receive files (the device machine's Xeon, which has VNNI): it needs numpy and onnxruntime,
nothing of the app's GUI.

    python -m app.benchmarks.latency_probe --seconds 20 FOLDER [FOLDER ...] [--json F]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path
from typing import Any

from app.core.quant.speed import int8_dot_support, interleaved_latency, synthetic_feed

PROFILED = ("fp32", "int8")


def op_profile(
    path: str, feed: Any, runs: int, workdir: Path, threads: int = 1
) -> dict[str, tuple[float, int]]:
    """ms per run and node count of each operator type, after `runs` runs on `threads`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.log_severity_level = 3
    opts.profile_file_prefix = str(workdir / "profile")
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(runs):
        session.run(None, {name: feed})
    profile = session.end_profiling()
    events = json.loads(Path(profile).read_text())
    os.remove(profile)
    total: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            total[op] += e["dur"]
            count[op] += 1
    return {op: (round(us / runs / 1000, 3), count[op] // runs) for op, us in total.most_common()}


def probe(folder: Path, seconds: float, workdir: Path, threads: int = 1) -> dict[str, Any]:
    graphs = {p.stem: str(p) for p in sorted(folder.glob("*.onnx"))}
    if "fp32" not in graphs:
        raise SystemExit(f"{folder}: no fp32.onnx to compare against")
    graphs = {"fp32": graphs.pop("fp32"), **graphs}
    feed = synthetic_feed(graphs["fp32"], None)
    latency = {
        threads: interleaved_latency(
            graphs, feed, seconds=seconds, threads=threads, max_rounds=100_000
        )
        for threads in (1, 2)
    }
    profile = {
        k: op_profile(graphs[k], feed, 60, workdir, threads) for k in PROFILED if k in graphs
    }
    return {
        "graphs": list(graphs),
        "latency_ms": latency,
        "profile_threads": threads,
        "profile_ms_per_run": profile,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", dest="json_out", type=Path)
    ap.add_argument("--profile-threads", type=int, default=1, help="threads of the op profile")
    args = ap.parse_args(argv)
    import onnxruntime as ort

    report: dict[str, Any] = {"onnxruntime": ort.__version__, "cpu_int8": int8_dot_support()}
    workdir = (args.json_out or Path("latency_probe.json")).resolve().parent
    for folder in args.folders:
        report[folder.name] = probe(folder, args.seconds, workdir, args.profile_threads)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))
    for folder in args.folders:
        for k, ops in report[folder.name]["profile_ms_per_run"].items():
            top = ", ".join(f"{op} {ms} ({n})" for op, (ms, n) in list(ops.items())[:10])
            total = round(sum(v[0] for v in ops.values()), 2)
            print(f"{folder.name} {k} ({args.profile_threads} thr): {total} ms | {top}")
    vnni = "with VNNI" if report["cpu_int8"]["vnni"] else "without VNNI"
    print(f"ONNX Runtime {report['onnxruntime']} CPU, {vnni}; p50 in turns")
    print(f"{'model':12} {'graph':18} {'1 thr ms':>9} {'x fp32':>7} {'2 thr ms':>9} {'x fp32':>7}")
    for folder in args.folders:
        lat = report[folder.name]["latency_ms"]
        for k in report[folder.name]["graphs"]:
            one, two = lat[1][k]["p50"], lat[2][k]["p50"]
            print(
                f"{folder.name:12} {k:18} {one:9.2f} {one / lat[1]['fp32']['p50']:7.3f} "
                f"{two:9.2f} {two / lat[2]['fp32']['p50']:7.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
