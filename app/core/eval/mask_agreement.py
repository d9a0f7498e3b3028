"""How alike a variant draws a segmentation model's instance masks to FP32, over an evaluation's
images: the boxes both find (same class, IoU >= 0.5, at the live view's confidence) and the IoU
of their masks. The bundled labels have no masks, so this is the measure of what INT8 or FP16
did to a mask head.

FP32 runs first in `evaluate`; its masks are kept bit-packed (a frame's masks are box-sized
booleans: 8x less as bits), and every later variant is compared image by image as it runs, so
only FP32's masks are ever held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.eval.agreement import compare_detections
from app.core.frames.masks import InstanceMasks
from app.core.frames.postprocess import Detections, has_masks, postprocess_detections
from app.core.frames.preprocess import Geometry
from app.core.model.spec import ModelSpec

CONF = 0.3  # the detections a user sees (as `matched_fp32`)
DIFFERS = 0.75  # a pair drawn differently enough to see (as `compare`'s "mask differs")


@dataclass
class _Packed:
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    rects: np.ndarray
    bits: list[np.ndarray]

    @classmethod
    def of(cls, d: Detections) -> _Packed:
        assert d.masks is not None
        bits = [np.packbits(m) for m in d.masks.masks]
        return cls(d.boxes, d.scores, d.class_ids, d.masks.rects, bits)

    def unpacked(self) -> Detections:
        masks = []
        for (x0, y0, x1, y1), b in zip(self.rects, self.bits):
            h, w = int(y1 - y0), int(x1 - x0)
            masks.append(np.unpackbits(b, count=h * w).reshape(h, w).astype(bool))
        return Detections(self.boxes, self.scores, self.class_ids, InstanceMasks(self.rects, masks))


class MaskAgreement:
    """Feed it each image's raw outputs, FP32's first; then `metrics(name)`."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.reference: list[_Packed] = []
        self.ious: dict[str, list[float]] = {}

    @staticmethod
    def applies(spec: ModelSpec) -> bool:
        return spec.task == "detection" and has_masks(spec)

    def add(self, name: str, index: int, raw: list[np.ndarray], geo: Geometry) -> None:
        dets = postprocess_detections(raw, self.spec, geo, conf=CONF, masks=True)
        if name == "fp32":
            self.reference.append(_Packed.of(dets))
            return
        ref = self.reference[index].unpacked()
        agree = compare_detections(ref, dets)
        assert ref.masks is not None and dets.masks is not None
        pairs = self.ious.setdefault(name, [])
        pairs += [ref.masks.iou(int(i), dets.masks, int(j)) for i, j in agree.pairs]

    def metrics(self, name: str) -> dict[str, Any]:
        """mask_iou_fp32: mean mask IoU of the boxes both find; mask_differs_fp32: the percent
        of them under DIFFERS. FP32 against itself: 1 and 0."""
        if name == "fp32":
            return {"mask_iou_fp32": 1.0, "mask_differs_fp32": 0.0} if self.reference else {}
        # (IoU as a fraction, as IoU is; the share of pairs under DIFFERS in percent, as every
        # share in the table)
        ious = np.array(self.ious.get(name, []))
        if not ious.size:
            return {}
        return {
            "mask_iou_fp32": round(float(ious.mean()), 4),
            "mask_differs_fp32": round(float((ious < DIFFERS).mean()) * 100, 2),
        }
