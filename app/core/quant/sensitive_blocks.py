"""Blocks the default INT8 recipe keeps float because one of them alone ruins the output.

The per-block sensitivity of `block_sensitivity` (the FP32 graph with only that block quantized,
output SQNR against FP32, on 8 calibration images spread over the set) is measured once per
calibration and target and kept beside its ranges as `sensitive_blocks_<target>.json`. A block
whose output SQNR lies more than `OUTLIER_DB` below the median block's (alone, it adds 100x the
noise of a typical block), and below `HARMLESS_DB` too, stays float in every INT8 graph built
from that calibration without an explicit keep list, on top of the leading stem blocks.

Why (issue 17): on YOLOX-Nano for ort-cpu, the stem blocks and one more stand apart: 7.8, 10.6,
12.7 and 15.5 dB against a median of 36.9, the next 21.1 (8 images spread over coco-train128;
6.5, 10.2, 12.1 and 12.1 against 35 on its first 4, measured before `ort_session` turned ONNX
Runtime's weight rounding off). The fourth is `Conv_67` -> SiLU -> the depthwise `Conv_70` at
104x104: channels of the depthwise conv's input vary by 0.02-0.04 around their mean, under one
uint8 step (0.036) of the tensor's range, and its 3x3 kernels reach 6-17. Keeping those blocks
float (16 of 113 convs instead of 12) moved agreement with FP32 on unseen video frames from 61.0
to 83.5 (mAP50-95 vs FP32's detections) and on unseen photos from 89.1 to 90.6; unseen mAP50-95
moved from -1.07 to -1.31, inside its bootstrap interval (int8_unseen protocol on a 2-core Zen 5
EPYC with VNNI; resources/benchmarks/*_sensitive_blocks.txt).
On the TensorRT layout the same rule was measured without gain (video 77.4 -> 77.1 with the
four blocks float) while its symmetric int8 SiLU outputs wasted half their grid; once those are
shifted onto the whole grid (`shift`) it finds the same four blocks (7.95-19.7 dB against a
median of 42.4) and, with bias correction, moves unseen agreement from 91.7 / 88.8 to
94.1 / 91.5 (photos / video), so it is applied there too. On the openvino layout (uint8
activations, Q/DQ on compute inputs only) it is, with bias correction: YOLOX-Nano keeps 7 of
113 convs float and its unseen-photo agreement rose from 92.4 to 96.0 on ONNX Runtime (92.6 ->
92.7 on OpenVINO, whose video frames went from 90.8 to 93.6); see
`targets.BIAS_CORRECTED_TARGETS` for the rows that chose it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from app.core.atomic import write_json
from app.core.errors import Cancelled, CancelToken
from app.core.model.workspace import Workspace
from app.core.quant.block_sensitivity import measure_blocks
from app.core.quant.space_to_depth import comparable_float
from app.core.quant.targets import SENSITIVE_BLOCK_TARGETS
from app.core.safe_json import load_json

log = logging.getLogger(__name__)
OUTLIER_DB = 20.0
# ... and only below this: at 30 dB a block's noise is ~3% of the output's RMS. On the HaGRID hand
# detector (median 80.6 dB) the rule without it kept a block at 59.0 dB float, for nothing.
HARMLESS_DB = 30.0
# Calibration images the blocks are measured on, taken evenly across the set: folders sorted by
# class made the first 4 ResNet-8 images all airplanes, on which its stem block looked 26 dB below
# the median (kept float with its consumers: INT8 top-1 72.8 against 74.8, FP32 74.4); spread
# over the set it sits 13-18 dB below. YOLOX-Nano's four outliers are the same either way.
ANALYSIS_IMAGES = 8
SAMPLING = "spread"
# 2: measured with ONNX Runtime's WeightBiasQuantization off (see `ort_session.cpu_session`):
# before, a quantized tensor's float consumers also had their weights rounded per tensor;
# 3: SiLUs float in the measured graphs, as in the recipe since QUANTIZE_VERSION 10 (`silu`);
# 4: ort-cpu's SiLU inputs floored, as in the recipe since QUANTIZE_VERSION 13 (`range_floors`);
# 5: its narrowing average pools float and residual-add inputs floored, as since
# QUANTIZE_VERSION 14 (`pools`, `range_floors`)
# 6: the float graph it compares against is folded as the quantized one is (`space_to_depth`)
MEASUREMENT = 6
# make_int8(source, ranges, out, target, keep_float) -> its record
Builder = Callable[[Path, Path, Path, str, list[str]], dict[str, Any]]


def file_name(target: str) -> str:
    return f"sensitive_blocks_{target}.json"


def outlier_blocks(
    blocks: list[dict[str, Any]], margin_db: float = OUTLIER_DB, ceiling_db: float = HARMLESS_DB
) -> list[dict]:
    """The blocks whose output SQNR is more than `margin_db` below the median block's and
    below `ceiling_db` (a block at 59 dB on a model whose median is 80 is no harm to anyone)."""
    scored = [b for b in blocks if b.get("output_sqnr_db") is not None]
    if len(scored) < 4:  # too few blocks for a median to mean "typical"
        return []
    median = float(np.median([b["output_sqnr_db"] for b in scored]))
    return [
        b
        for b in scored
        if b["output_sqnr_db"] < median - margin_db and b["output_sqnr_db"] < ceiling_db
    ]


def load_sensitive_nodes(calibration: Path, target: str) -> list[str] | None:
    """Node names kept float for `target` by this calibration's measurement, or None when it
    was not measured (or the file is damaged)."""
    try:
        data = load_json(calibration / file_name(target))
        nodes = data["nodes"]
        keys = ("margin_db", "harmless_db", "images", "sampling", "measurement")
        rule = tuple(data.get(k) for k in keys)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if rule != (OUTLIER_DB, HARMLESS_DB, ANALYSIS_IMAGES, SAMPLING, MEASUREMENT):  # measure again
        return None
    return [str(n) for n in nodes] if isinstance(nodes, list) else None


def ensure_sensitive_blocks(
    ws: Workspace,
    calibration: Path,
    target: str,
    build: Builder,
    cancel: CancelToken | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> list[str]:
    """Measure (once per calibration and target) and return the node names of the outlier
    blocks; [] for targets the rule is not applied to or when the measurement cannot run (the
    INT8 graph is then built as before, with the stem blocks float). `build` is `make_int8`
    (passed in: the recipe module calls this, so it cannot be imported here)."""
    if target not in SENSITIVE_BLOCK_TARGETS:
        return []
    known = load_sensitive_nodes(calibration, target)
    if known is not None:
        return known
    cancel = cancel or CancelToken()
    progress = progress or (lambda f, m: None)
    try:
        blocks = _measure(ws, calibration, target, build, cancel, progress)
    except (Cancelled, OSError):  # a full disk is the user's to fix, not a reason to skip
        raise
    except Exception as exc:  # ORT's errors on graphs it cannot take apart: the recipe holds
        log.warning("sensitive-block analysis skipped (%s); the stem rule alone applies", exc)
        return []
    if blocks is None:
        return []
    outliers = outlier_blocks(blocks)
    nodes: list[str] = []
    for b in outliers:
        nodes += [n for n in b["nodes"] if n not in nodes]
    scored = [b["output_sqnr_db"] for b in blocks]
    median = round(float(np.median(scored)), 2) if scored else None
    write_json(
        calibration / file_name(target),
        {
            "target": target,
            "margin_db": OUTLIER_DB,
            "harmless_db": HARMLESS_DB,
            "median_db": median,
            "images": ANALYSIS_IMAGES,
            "sampling": SAMPLING,
            "measurement": MEASUREMENT,
            "blocks": [
                {"block": b["block"], "output_sqnr_db": b["output_sqnr_db"]} for b in outliers
            ],
            "nodes": nodes,
        },
    )
    if outliers:
        log.info(
            "kept float for %s: %s (output SQNR alone %s dB, median %s)",
            target,
            ", ".join(b["block"] for b in outliers),
            ", ".join(str(b["output_sqnr_db"]) for b in outliers),
            median,
        )
    return nodes


def analysis_files(files: list[Path], count: int = ANALYSIS_IMAGES) -> list[Path]:
    """`count` of `files` at even steps from the first, so a folder sorted by class gives
    several classes, not the first one's images."""
    if len(files) <= count:
        return list(files)
    return [files[i * len(files) // count] for i in range(count)]


def _measure(
    ws: Workspace,
    calibration: Path,
    target: str,
    build: Builder,
    cancel: CancelToken,
    progress: Callable[[float, str], None],
) -> list[dict[str, Any]] | None:
    """`block_sensitivity.measure_blocks` on calibration images spread over the set (see
    `analysis_files`); None without any readable. Working copies go to a hidden .part folder in
    the workspace (cleaned up there after a killed job), not to /tmp."""
    from app.core.quant.calibration_images import CalibrationReader

    spec = ws.spec()
    used = load_json(calibration / "meta.json").get("images_used") or []
    files = analysis_files([Path(p) for p in used if Path(p).is_file()])
    batches = list(CalibrationReader(spec, files, batch=1, cancel=cancel))
    if not batches:
        log.info(
            "sensitive blocks not measured: no calibration image of %s is readable", calibration
        )
        return None
    folder = ws.variant_path("int8").parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sensitivity.", suffix=".part", dir=folder) as tmp:
        float_path, qdq_path = Path(tmp) / "float.onnx", Path(tmp) / "int8-all.onnx"
        onnx.save(comparable_float(spec.path), str(float_path))
        progress(0.05, "quantizing every layer")
        build(float_path, calibration / "ranges.json", qdq_path, target, [])
        cancel.check()
        return measure_blocks(
            float_path,
            qdq_path,
            spec.input_name,
            batches,
            cancel,
            lambda f: progress(0.1 + 0.9 * f, "one block at a time"),
        )
