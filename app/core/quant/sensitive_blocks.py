"""Blocks the default INT8 recipe keeps float because one of them alone ruins the output.

The per-block sensitivity of `app.core.precision.debug` (the FP32 graph with only that block
quantized, output SQNR against FP32, on 4 calibration images) is measured once per calibration
and target and kept beside its ranges as `sensitive_blocks_<target>.json`. A block whose
output SQNR lies more than `OUTLIER_DB` below the median block's (alone, it adds 100x the noise
of a typical block) stays float in every INT8 graph built from that calibration without an
explicit keep list, on top of the leading stem blocks.

Why (issue 17): on YOLOX-Nano for ort-cpu, the stem blocks and one more stood apart (6.5, 10.2,
12.1 and 12.1 dB against a median of 35; the next is 19.4). The fourth is `Conv_67` -> SiLU ->
the depthwise `Conv_70` at 104x104: channels of the depthwise conv's input vary by 0.02-0.04
around their mean, under one uint8 step (0.036) of the tensor's range, and its 3x3 kernels
reach 6-17. Keeping those blocks float (16 of 113 convs instead of 12) moved agreement with
FP32 on unseen video frames from 61.0 to 83.5 (mAP50-95 vs FP32's detections) and on unseen
photos from 89.1 to 90.6; unseen mAP50-95 moved from -1.07 to -1.31, inside its bootstrap
interval (int8_unseen protocol on a 2-core Zen 5 EPYC with VNNI;
resources/benchmarks/*_sensitive_blocks.txt).
On the TensorRT layout the same rule was measured without gain (video 77.4 -> 77.1 with the
four blocks float; the loss there is spread over every symmetric int8 SiLU output), so it is
applied for ort-cpu only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.core.atomic import write_json
from app.core.errors import Cancelled, CancelToken
from app.core.model.workspace import Workspace
from app.core.safe_json import load_json

log = logging.getLogger(__name__)
OUTLIER_DB = 20.0
TARGETS = ("ort-cpu",)
ANALYSIS_IMAGES = 4  # the block sensitivity itself runs on 4 images (debug.SENSITIVITY_IMAGES)


def file_name(target: str) -> str:
    return f"sensitive_blocks_{target}.json"


def outlier_blocks(blocks: list[dict[str, Any]], margin_db: float = OUTLIER_DB) -> list[dict]:
    """The blocks whose output SQNR is more than `margin_db` below the median block's."""
    scored = [b for b in blocks if b.get("output_sqnr_db") is not None]
    if len(scored) < 4:  # too few blocks for a median to mean "typical"
        return []
    median = float(np.median([b["output_sqnr_db"] for b in scored]))
    return [b for b in scored if b["output_sqnr_db"] < median - margin_db]


def load_sensitive_nodes(calibration: Path, target: str) -> list[str] | None:
    """Node names kept float for `target` by this calibration's measurement, or None when it
    was not measured (or the file is damaged)."""
    try:
        data = load_json(calibration / file_name(target))
        nodes = data["nodes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [str(n) for n in nodes] if isinstance(nodes, list) else None


def ensure_sensitive_blocks(
    ws: Workspace,
    calibration: Path,
    target: str,
    cancel: CancelToken | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> list[str]:
    """Measure (once per calibration and target) and return the node names of the outlier
    blocks; [] for targets the rule is not applied to or when the analysis cannot run (the
    INT8 graph is then built as before, with the stem blocks float)."""
    if target not in TARGETS:
        return []
    known = load_sensitive_nodes(calibration, target)
    if known is not None:
        return known
    from app.core.precision.debug import analyse_layers

    try:
        analysis = analyse_layers(
            ws,
            target=target,
            count=ANALYSIS_IMAGES,
            calibration=calibration,
            cancel=cancel,
            progress=progress,
        )
    except Cancelled:
        raise
    except Exception as exc:  # a graph ORT cannot expose tensors of: the recipe is still valid
        log.warning("sensitive-block analysis skipped (%s); the stem rule alone applies", exc)
        return []
    blocks = analysis["blocks"]
    outliers = outlier_blocks(blocks)
    nodes: list[str] = []
    for b in outliers:
        nodes += [n for n in b["nodes"] if n not in nodes]
    scored = [b["output_sqnr_db"] for b in blocks if b.get("output_sqnr_db") is not None]
    write_json(
        calibration / file_name(target),
        {
            "target": target,
            "margin_db": OUTLIER_DB,
            "median_db": round(float(np.median(scored)), 2) if scored else None,
            "images": analysis["images"],
            "blocks": [
                {"block": b["block"], "output_sqnr_db": b["output_sqnr_db"]} for b in outliers
            ],
            "nodes": nodes,
        },
    )
    if outliers:
        log.info(
            "kept float for %s: %s (output SQNR alone %s dB, median %.1f)",
            target,
            ", ".join(b["block"] for b in outliers),
            ", ".join(str(b["output_sqnr_db"]) for b in outliers),
            float(np.median(scored)),
        )
    return nodes
