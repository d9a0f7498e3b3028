"""NVIDIA ModelOpt's ONNX post-training quantization (`modelopt.onnx.quantization.quantize`),
INT8 with its defaults, calibrated on a saved array of preprocessed images: an anchor for the
app's recipe. ModelOpt is not a dependency of the app: it is imported only inside
`modelopt_int8`, and where it lives in another environment (it pins its own onnx and
onnxruntime-gpu) this module runs there as a worker:

    MODELOPT_PYTHON -m app.benchmarks.modelopt_ptq --model M --calibration C.npy \
        --method entropy --out OUT.onnx --json RESULT.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.core.atomic import atomic_path, write_json

METHODS = ("entropy", "max")
WORKER_TIMEOUT_S = 3600


def modelopt_int8(
    source: Path, out_path: Path, calibration: np.ndarray | Path, method: str
) -> dict[str, Any]:
    """Quantize `source` to INT8 with ModelOpt (`method`: entropy or max) on CPU calibration;
    every other setting is ModelOpt's default. Returns what was used."""
    import modelopt  # not a dependency: only this function needs it
    import onnxruntime
    from modelopt.onnx.quantization import quantize

    if method not in METHODS:
        raise ValueError(f"ModelOpt calibration method is one of {METHODS}, not {method!r}")
    data = np.load(calibration) if isinstance(calibration, Path) else calibration
    t0 = time.perf_counter()
    # ModelOpt writes files beside its output: give it a folder of its own, then move the graph
    with (
        atomic_path(out_path) as part,
        tempfile.TemporaryDirectory(prefix=".modelopt.", dir=out_path.parent) as tmp,
    ):
        written = Path(tmp) / "model.int8.onnx"
        quantize(
            str(source),
            quantize_mode="int8",
            calibration_data=data,
            calibration_method=method,
            calibration_eps=["cpu"],  # no GPU here; the default also asks for cuda and trt
            output_path=str(written),
            log_level="WARNING",
        )
        part.write_bytes(written.read_bytes())
    return {
        "modelopt": modelopt.__version__,
        "onnxruntime_used_by_modelopt": onnxruntime.__version__,
        "quantize_mode": "int8",
        "calibration_method": method,
        "calibration_eps": ["cpu"],
        "calibration_images": int(len(data)),
        "other_settings": "ModelOpt defaults (high_precision_dtype fp16, dq_only False)",
        "seconds": round(time.perf_counter() - t0, 1),
    }


def modelopt_importable() -> bool:
    return importlib.util.find_spec("modelopt") is not None


def run_modelopt(
    source: Path,
    out_path: Path,
    calibration: np.ndarray | Path,
    method: str,
    python: str | None = None,
) -> dict[str, Any]:
    """ModelOpt INT8 of `source`, in this process when ModelOpt imports here, else through
    `python` (an interpreter that has it; `calibration` is then a saved .npy). Never raises
    for ModelOpt's sake: a failure is returned as {"error": why}, so the other anchors are
    still recorded."""
    if python is None and not modelopt_importable():
        return {
            "error": "NVIDIA ModelOpt is not installed for this Python; install it in a separate "
            'environment (pip install "nvidia-modelopt[onnx]") and pass --modelopt-python'
        }
    if python is None:
        try:
            return modelopt_int8(source, out_path, calibration, method)
        except Exception as exc:  # a third-party tool failing is a finding to record
            return {"error": f"ModelOpt failed: {type(exc).__name__}: {exc}"[:600]}
    with tempfile.TemporaryDirectory(prefix=".modelopt-worker.", dir=out_path.parent) as tmp:
        result = Path(tmp) / "result.json"
        cmd = [python, "-m", "app.benchmarks.modelopt_ptq", "--model", str(source)]
        cmd += ["--calibration", str(calibration), "--method", method]
        cmd += ["--out", str(out_path), "--json", str(result)]
        root = Path(__file__).resolve().parents[2]  # so the worker imports this checkout's app
        try:
            proc = subprocess.run(
                cmd, cwd=root, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"error": f"ModelOpt worker {python} did not run: {exc}"[:600]}
        if result.is_file():
            return json.loads(result.read_text())
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"ModelOpt worker exited {proc.returncode}: {' | '.join(tail)}"[:600]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--calibration", required=True, help=".npy of preprocessed input tensors")
    ap.add_argument("--method", choices=METHODS, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", dest="json_out", required=True)
    args = ap.parse_args(argv)
    try:
        result = modelopt_int8(
            Path(args.model), Path(args.out), Path(args.calibration), args.method
        )
    except Exception as exc:  # recorded by the caller, whatever ModelOpt raised
        result = {"error": f"ModelOpt failed: {type(exc).__name__}: {exc}"[:600]}
    write_json(Path(args.json_out), result)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
