"""Quantized weights paired with their float twins (ONNX Runtime's `create_weight_matching`),
with that function's raw "ERROR:root: Model Error ... not found!" lines (logged on the root
logger, one per weight without a twin) kept from the user's terminal and said once, in words."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class _Unmatched(logging.Filter):
    """Drops and counts the root-logger records qdq_loss_debug writes."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.pathname.endswith("qdq_loss_debug.py"):
            self.count += 1
            return False
        return True


def match_weights(float_path: str | Path, qdq_path: str | Path) -> dict[str, dict[str, Any]]:
    """{weight: {"float": array, "dequantized": array}} for every quantized weight of the Q/DQ
    graph at `qdq_path` that the float graph at `float_path` holds under the same name."""
    from onnxruntime.quantization.qdq_loss_debug import create_weight_matching

    root = logging.getLogger()
    unmatched = _Unmatched()
    root.addFilter(unmatched)
    try:
        matched = create_weight_matching(str(float_path), str(qdq_path))
    finally:
        root.removeFilter(unmatched)
    if unmatched.count:
        log.info(
            "%d quantized weight(s) have no float twin to compare with; their weight error is "
            "left out of the analysis",
            unmatched.count,
        )
    return matched
