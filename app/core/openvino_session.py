"""OpenVINO on the CPU, compiled the one way the app runs it (backend openvino-cpu and the speed
check of `quantize --target openvino` both use this, so what is timed is what runs).

FP32 arithmetic is pinned (`INFERENCE_PRECISION_HINT` f32): OpenVINO's CPU plugin otherwise runs
FP32 graphs in bfloat16 on CPUs that have it (AMX, AVX512-BF16), which is not the variant the user
chose. Compiled for latency, one request at a time.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from typing import Any


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def import_openvino() -> Any:
    """`openvino`, imported without its usage telemetry. Importing openvino (its model converter,
    `openvino.tools.ovc`) sends a usage event to Google Analytics from a thread unless the user
    opted out with OpenVINO's `opt_in_out`: on behalf of a user of this app who was never asked.
    When `openvino_telemetry` cannot be imported OpenVINO uses its own no-op stub; a None entry
    in sys.modules makes that so, for this process only (the user's consent file, which other
    OpenVINO tools read, is left alone)."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


@cache
def core() -> Any:
    """One OpenVINO Core per process (it loads the device plugins once)."""
    return import_openvino().Core()


def cpu_config(threads: int | None = None) -> dict[str, str]:
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return config


def read_model(path: str | Path) -> Any:
    return core().read_model(str(path))


def compile_cpu(
    model: Any, threads: int | None = None, shapes: dict[Any, list[int]] | None = None
) -> Any:
    """`model` (read_model's, or a path) compiled for the CPU with `cpu_config`; with `shapes`
    ({input index or name: dims}) its dynamic inputs fixed to them first (`has_dynamic_input`)."""
    if isinstance(model, str | Path):
        model = read_model(model)
    if shapes:
        model = model.clone()
        model.reshape({model.inputs[k] if isinstance(k, int) else k: v for k, v in shapes.items()})
    return core().compile_model(model, "CPU", cpu_config(threads))


def has_dynamic_input(model: Any) -> bool:
    """Whether an input of `model` has a dimension left open (a YOLOX export with "height" and
    "width"). OpenVINO then picks its kernels for any size: YOLOX-Nano at 384x512 ran 14.3 ms
    dynamic against 11.9 ms with the shape fixed (FP32; its int8-ov 12.8 against 10.2; 1 thread,
    2-core Zen 5 EPYC), for 0.2-0.7 s of compiling per shape."""
    return any(port.get_partial_shape().is_dynamic for port in model.inputs)
