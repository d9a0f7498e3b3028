"""The variants a user asks for in one go (`int8-studio quantize`, the Variants tab): the
target's FP16 / INT8 variants and, on request, the INT8 graph with its uneven conv inputs
equalised (`int8-eq`, `-trt`, `-ov`), which brought YOLOX-Nano closer to FP32 and a ReLU hand
detector further from it, so it is built beside the default, never instead of it
(targets.EQUALIZE_BY_DEFAULT)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core.errors import CancelToken
from app.core.model.workspace import Workspace
from app.core.quant.quantize import quantize
from app.core.quant.targets import SPEED_TARGETS, variant_name

EQUALIZED_BASE = "int8-eq"


def build_variants(
    ws: Workspace,
    precisions: list[str] | tuple[str, ...],
    target: str,
    *,
    equalized: bool = False,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> list[dict[str, Any]]:
    """`quantize` the `precisions` for `target` (an INT8 variant for a CPU target timed against
    FP32 on this machine) and, with `equalized` and INT8 asked for, `int8-eq` for it too;
    every variant's record, in that order."""
    progress = progress or (lambda f, m: None)
    extra = equalized and "int8" in precisions
    share = 0.7 if extra else 1.0  # of the bar: the equalised build re-reads the images

    out = quantize(
        ws,
        precisions=list(precisions),
        target=target,
        measure_speed=target in SPEED_TARGETS,
        progress=lambda f, m: progress(share * f, m),
        cancel=cancel,
    )
    if extra:
        out += quantize(
            ws,
            precisions=["int8"],
            target=target,
            equalize=True,
            variant_name=variant_name(EQUALIZED_BASE, target),
            progress=lambda f, m: progress(share + (1 - share) * f, m),
            cancel=cancel,
        )
    return out
