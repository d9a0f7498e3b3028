"""Scores candidate graphs on a Pool's search or held-out part against FP32, whose outputs are
computed once per image and kept: agreement with FP32 on every image (detector: mAP50-95 of the
candidate measured against FP32's own detections; classifier: top-1 agreement), and accuracy on
the images of the labelled folder where it has labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import CancelToken, UserError
from app.core.eval import bootstrap
from app.core.eval.coco_matches import CocoMatches
from app.core.eval.detection_truth import detection_truth
from app.core.eval.evaluate import (
    MAP_MAX_DET,
    RunnerFactory,
    _run_variant,
    class_truth,
    variant_model_path,
)
from app.core.eval.metrics import (
    agreement_gt,
    coco_map,
    detections_to_coco,
)
from app.core.eval.pool import Pool, PoolPart
from app.core.model.workspace import Workspace

PARTS = ("search", "held_out")


class PoolScorer:
    """FP32 run once on both parts of `pool`; `score(path, part)` runs one candidate."""

    def __init__(
        self,
        ws: Workspace,
        pool: Pool,
        images_dir: str | Path,
        *,
        labels_dir: str | Path | None = None,
        coco_json: str | Path | None = None,
        backend: str = "ort-cpu",
        runner_factory: RunnerFactory,
        cancel: CancelToken | None = None,
    ) -> None:
        self.ws, self.pool, self.backend = ws, pool, backend
        self.runner_factory = runner_factory
        self.cancel = cancel or CancelToken()
        self.spec = ws.spec()
        self.detector = self.spec.task == "detection"
        self.agreement_metric = "agreement_mAP50_95" if self.detector else "top1_agreement"
        self.label_metric = "mAP50_95" if self.detector else "top1"
        self.parts: dict[str, PoolPart] = {"search": pool.search, "held_out": pool.held_out}
        self.fp32: dict[str, list[Any]] = {}
        self.truth: dict[str, Any] = {}
        self.labels_source = ""
        fp32_path = variant_model_path(ws, "fp32")
        for part in PARTS:
            self.fp32[part] = self._run(fp32_path, part)[0]
            self.truth[part] = self._truth(part, Path(images_dir), labels_dir, coco_json)
        self.labelled = any(self.truth[p] is not None for p in PARTS)
        self.reference = {p: self._metrics(p, self.fp32[p]) for p in PARTS}

    def _run(self, model_path: Path, part: str) -> tuple[list[Any], dict, dict]:
        none = lambda f, m: None  # noqa: E731 - the search reports progress per trial
        return _run_variant(
            self.spec,
            model_path,
            self.runner_factory,
            self.backend,
            self.parts[part],
            self.cancel,
            none,
            0.0,
            0.0,
        )

    def _truth(self, part: str, images_dir: Path, labels_dir: Any, coco_json: Any) -> Any:
        """Ground truth of the part's labelled images (COCO dict or class-index sets), or None
        when the labelled folder has no labels (agreement only)."""
        pp = self.parts[part]
        rows = pp.labelled()
        if not rows:
            return None
        sizes = [pp.sizes()[i] for i in rows]
        if not self.detector:
            found = class_truth(self.spec, [(p, None) for p, _, _ in sizes], images_dir, labels_dir)
            self.labels_source = self.labels_source or found.source
            return found.truth if found.labelled else None
        gt, source, _ = detection_truth(self.spec.labels, sizes, images_dir, labels_dir, coco_json)
        self.labels_source = source or self.labels_source
        return gt

    def score(self, model_path: Path, part: str = "search") -> dict[str, Any]:
        """Metrics of one graph on one part, with its p50 latency."""
        outputs, _, latency = self._run(model_path, part)
        return {**self._metrics(part, outputs), "latency_p50_ms": latency["p50"]}

    def _metrics(self, part: str, outputs: list[Any]) -> dict[str, float]:
        truth, rows = self.truth[part], self.parts[part].labelled()
        if self.detector:
            agree = self._agreement_gt(part)
            m = {
                self.agreement_metric: coco_map(agree, detections_to_coco(outputs, MAP_MAX_DET))[
                    "mAP50_95"
                ]
            }
            if truth is not None and truth["annotations"]:
                labelled = detections_to_coco([outputs[i] for i in rows], MAP_MAX_DET)
                m[self.label_metric] = coco_map(truth, labelled)["mAP50_95"]
            return m
        top, ref = self._top1(outputs), self._top1(self.fp32[part])
        m = {self.agreement_metric: round(float((top == ref).mean() * 100), 2)}
        if truth is not None:
            hits = [top[i] in t for i, t in zip(rows, truth) if t]
            m[self.label_metric] = round(100 * float(np.mean(hits)), 2)
        return m

    def _agreement_gt(self, part: str) -> dict[str, Any]:
        if part not in self.truth.setdefault("agreement", {}):
            gt = agreement_gt(self.fp32[part], self.parts[part].sizes())
            if not gt["annotations"]:
                raise UserError(
                    f"FP32 finds nothing (score >= 0.3) in the {part.replace('_', '-')} part of "
                    "the images searched (--images and any --pool, calibration images left out), "
                    "so agreement with it cannot be measured; give images of the objects the "
                    "model detects (--pool DIR_OR_VIDEO adds unlabelled ones)"
                )
            self.truth["agreement"][part] = gt
        return self.truth["agreement"][part]

    @staticmethod
    def _top1(outputs: list[Any]) -> np.ndarray:
        return np.argmax(np.stack(outputs), axis=1)

    def intervals(self, model_path: Path, part: str = "held_out") -> dict[str, Any]:
        """Metrics of one graph on `part` with bootstrap intervals of each metric and of its
        difference to FP32 (paired, over the part's images)."""
        outputs, _, latency = self._run(model_path, part)
        metrics = {**self._metrics(part, outputs), "latency_p50_ms": latency["p50"]}
        groups = self._per_image(part, {"fp32": self.fp32[part], "candidate": outputs})
        out: dict[str, Any] = {"metrics": metrics, "metrics_ci": {}, "diff_ci": {}, "fp32_ci": {}}
        for scores in groups:
            found = bootstrap.intervals(scores, resamples=bootstrap.default_resamples(scores))
            out["metrics_ci"].update(found.get("candidate", {}).get("metrics_ci", {}))
            out["diff_ci"].update(found.get("candidate", {}).get("diff_ci", {}))
            out["fp32_ci"].update(found.get("fp32", {}).get("metrics_ci", {}))
        out["intervals"] = bootstrap.settings(
            bootstrap.MAP_RESAMPLES if self.detector else bootstrap.RESAMPLES
        )
        return out

    def _per_image(self, part: str, outputs: dict[str, list[Any]]) -> list[dict[str, list]]:
        """Per-image scores for the bootstrap: agreement over the part, labels over its labelled
        images (separate groups: the bootstrap resamples one set of images per group)."""
        truth, rows = self.truth[part], self.parts[part].labelled()
        if self.detector:
            agree = self._agreement_gt(part)
            groups = [
                {
                    k: [CocoMatches(agree, detections_to_coco(v, MAP_MAX_DET), "agreement_")]
                    for k, v in outputs.items()
                }
            ]
            if truth is not None and truth["annotations"]:
                groups.append(
                    {
                        k: [CocoMatches(truth, detections_to_coco([v[i] for i in rows]))]
                        for k, v in outputs.items()
                    }
                )
            return groups
        ref = self._top1(self.fp32[part])
        hits: dict[str, list] = {}
        for k, v in outputs.items():
            top = self._top1(v)
            per = {self.agreement_metric: (top == ref).astype(float)}
            if truth is not None:
                label = np.full(len(top), np.nan)
                for i, t in zip(rows, truth):
                    label[i] = float(top[i] in t) if t else np.nan
                per[self.label_metric] = label
            hits[k] = [bootstrap.MeanOfImages(per)]
        return [hits]
