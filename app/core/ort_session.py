"""One ONNX Runtime CPU session for core's own graph work (probing, ranges, precision analysis).

Core runs models that are not the user's inference (a probe on a grey frame, a graph with extra
outputs for calibration, per-block sensitivity); those need no backend, only a plain CPU session.
Inference the user chose goes through a runner the caller hands in (app.backends).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx


def cpu_session(
    model: onnx.ModelProto | str | Path,
    *,
    threads: int | None = None,
    log_severity: int = 3,
) -> Any:
    """An `onnxruntime.InferenceSession` on the CPU provider for a graph in memory or a file.

    `threads` sets intra-op threads (None: ONNX Runtime's default, every core); `log_severity`
    3 keeps ORT's warnings about graphs we built ourselves out of the user's terminal.

    ONNX Runtime's `WeightBiasQuantization` optimizer is off: it rounds the float weights of any
    Conv/Gemm fed by a DequantizeLinear to per-tensor int8, so a graph with one tensor
    fake-quantized (precision analysis, `block_sensitivity`) would also have its consumers'
    weights quantized, per tensor, without saying so.
    """
    import onnxruntime as ort  # a second or so to import; only work that runs a graph pays it

    opts = ort.SessionOptions()
    opts.log_severity_level = log_severity
    if threads:
        opts.intra_op_num_threads = threads
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(
        source, opts, providers=["CPUExecutionProvider"], disabled_optimizers=EXACT_WEIGHTS
    )


# ONNX Runtime optimizers that change a graph's arithmetic, off where core computes (above)
EXACT_WEIGHTS = ["WeightBiasQuantization"]
