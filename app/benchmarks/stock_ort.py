"""ONNX Runtime's stock `quantize_static` as a user of ONNX Runtime would call it: QDQ,
per-channel weights, no node excluded, calibrated by ORT's own calibrator on the same
preprocessed calibration images the app uses. An anchor for the app's recipe, not part of it.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from app.core.atomic import atomic_path
from app.core.model.spec import ModelSpec
from app.core.quant.calibration_images import CalibrationReader, select_images
from app.core.quant.graph_rules import MIN_QDQ_OPSET, raise_opset

# No `CalibMaxIntermediateOutputs` (chunked calibration): in ORT 1.31 MinMax drops every full
# chunk without computing its ranges (and raises "No data is collected." when the image count
# is a multiple of the chunk), and the histogram methods ignore it. MinMax keeps only two
# numbers per tensor and image; Percentile keeps every activation of every image, as a stock
# user's run does (the recorded run peaked at 17.9 GB resident for YOLOX-Nano on 128 images).
ORT_METHODS = {"percentile": "Percentile", "minmax": "MinMax", "entropy": "Entropy"}


def calibration_tensors(spec: ModelSpec, images_dir: Path, count: int | None = None) -> np.ndarray:
    """The calibration images as the model's input tensors [N, ...] float32, chosen and
    preprocessed exactly as `app.core.quant.calibration.calibrate` chooses and feeds them."""
    files, _ = select_images(images_dir, count)
    batches = list(CalibrationReader(spec, files, batch=1))
    return np.concatenate(batches).astype(np.float32, copy=False)


def op_counts(path: Path) -> dict[str, int]:
    """How many nodes of each type the graph holds (Q/DQ counts show what was quantized)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(sorted(Counter(n.op_type for n in graph.node).items()))


def stock_quantize_static(
    source: Path, out_path: Path, input_name: str, tensors: np.ndarray, method: str
) -> dict[str, Any]:
    """Write ORT's stock QDQ INT8 graph of `source` calibrated with `method` (percentile,
    minmax or entropy) on `tensors`; returns the settings used and the graph's op counts."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class ArrayReader(CalibrationDataReader):
        """One image per call, in order, then None (what ORT's calibrator expects)."""

        def __init__(self) -> None:
            self.index = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.index >= len(tensors):
                return None
            self.index += 1
            return {input_name: tensors[self.index - 1 : self.index]}

    settings = {
        "quant_format": "QDQ",
        "per_channel": True,
        "activation_type": "QUInt8",
        "weight_type": "QInt8",
        "calibrate_method": ORT_METHODS[method],
        "nodes_to_exclude": [],
        "calibration_images": int(len(tensors)),
    }
    model = onnx.load(str(source))
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    with tempfile.TemporaryDirectory(prefix=".stock-ort.", dir=out_path.parent) as tmp:
        src = Path(tmp) / "model.onnx"
        # per-channel Q/DQ needs opset 13; ORT refuses an older model, a user converts it first
        onnx.save(raise_opset(model, MIN_QDQ_OPSET), str(src))
        with atomic_path(out_path) as part:
            quantize_static(
                str(src),
                str(part),
                ArrayReader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, ORT_METHODS[method]),
            )
            onnx.checker.check_model(str(part))
    return {**settings, "opset_from": opset, "opset": MIN_QDQ_OPSET, "ops": op_counts(out_path)}
