"""Accuracy and latency of every variant on a folder of images, from labels when the folder has
them (YOLO txt, COCO JSON, or class-named subfolders), else agreement with the FP32 model.

What runs the graphs is handed in: a `RunnerFactory` (app.backends.factory.make_runner in the
app), the way Polygraphy's comparator is handed its runners, so core imports no backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.core.errors import CancelToken, UserError
from app.core.eval import bootstrap
from app.core.eval.agreement import compare_detections
from app.core.eval.coco_matches import CocoMatches
from app.core.eval.detection_truth import detection_truth
from app.core.eval.labels import ClassLabels, class_labels
from app.core.eval.mask_agreement import MaskAgreement
from app.core.eval.metrics import (
    agreement_gt,
    coco_map,
    detections_to_coco,
)
from app.core.eval.preprocess_search import collapse_alarm
from app.core.frames.pipeline import FramePipeline
from app.core.frames.postprocess import Detections, class_probabilities
from app.core.frames.sources import ImageSet
from app.core.model.spec import ModelSpec
from app.core.model.workspace import Workspace
from app.core.timing import percentiles

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
WARMUP = 3
MAP_CONF, MAP_IOU, MAP_MAX_DET = 0.001, 0.65, 100  # YOLOX's own COCO evaluation settings


class Runner(Protocol):
    """What evaluation needs of a runner (app.backends.base.Runner has it): a context manager
    that opens and closes the session, `infer` on a preprocessed tensor, and `describe`."""

    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> Any: ...
    def infer(self, feed: np.ndarray) -> list[np.ndarray]: ...
    def describe(self) -> dict[str, Any]: ...


# (backend name, model path) -> a runner not yet opened; app.backends.factory.make_runner fits.
RunnerFactory = Callable[[str, Path], Runner]


def variant_model_path(ws: Workspace, name: str) -> Path:
    """The ONNX file of a variant; fp32 is the user's model unless the workspace holds a copy."""
    if name == "fp32" and not ws.valid_variant("fp32"):
        path = Path(ws.spec().path)
        if not path.is_file():  # moved: the workspace learns the new place when it is opened
            raise UserError(
                f"{path}: the model file is gone (moved?); open it where it is now (`int8-studio "
                f"calibrate --model NEW_PATH` or the GUI) and the workspace {ws.root} follows it"
            )
        return path
    return ws.require_variant(name)


def class_truth(
    spec: ModelSpec, images: list[tuple[Path, np.ndarray]], root: Path, labels: Any = None
) -> ClassLabels:
    """Accepted class indices per image (empty when unknown), from `labels` (a CSV or folder)
    or, when None, from a labels CSV or class-named subfolders in the image folder."""
    return class_labels(spec.labels, [p for p, _ in images], root, labels)


def calibration_overlap(ws: Workspace, variants: list[str], files: list[Path]) -> str | None:
    """A warning when some evaluation images calibrated the INT8 variants being evaluated:
    their ranges were fitted to those images, so INT8 looks better there than on new ones."""
    keys = {(ws.variant_meta(v) or {}).get("calibration") for v in variants if v != "fp32"}
    used: set[Path] = set()
    for key in keys:
        if isinstance(key, str):
            used |= ws.calibration_images(key)
    shared = [f for f in files if Path(f).resolve() in used]
    if not shared:
        return None
    return (
        f"{len(shared)} of {len(files)} evaluation images also calibrated the INT8 variants "
        f"(e.g. {Path(shared[0]).name}): INT8 looks better on them than it will on new images; "
        "evaluate on images the calibration did not use"
    )


def _run_variant(
    spec, model_path, runner_factory, backend, images, cancel, progress, base, share,
    masks: MaskAgreement | None = None, name: str = "",
):  # fmt: skip
    """(outputs per image, the runner's description, latency percentiles); a segmentation
    model's masks go to `masks` as they come, as variant `name`'s (fp32 first)."""
    runner = runner_factory(backend, model_path)
    outputs: list[Any] = []
    with runner:
        pipe = FramePipeline(spec, runner)
        # scored on boxes: no masks for its 300 low-score boxes an image (a mask maker kept
        # with each image's detections would hold that image's prototypes to the end)
        pipe.masks = False
        if spec.task == "detection":
            pipe.conf, pipe.iou = MAP_CONF, MAP_IOU
            spec.postprocess.max_det = MAP_MAX_DET
        times = []
        for i, (_, image) in enumerate(images):
            cancel.check()
            raw, geo, t = pipe.infer_raw(image)
            times.append(t["infer_ms"])
            if spec.task == "detection":
                outputs.append(pipe.decode(raw, geo).detections)
                if masks is not None:
                    masks.add(name, i, raw, geo)
            else:
                outputs.append(class_probabilities(raw, spec)[0])
            if i % 8 == 0:
                progress(
                    base + share * i / len(images), f"{Path(model_path).stem}: {i}/{len(images)}"
                )
        info = runner.describe()
    lat = percentiles(times[WARMUP:] if len(times) > 2 * WARMUP else times)
    return outputs, info, {k: lat[k] for k in ("p50", "p90", "p99")}


def evaluate(
    ws: Workspace,
    images_dir: str | Path,
    *,
    labels_dir: str | Path | None = None,
    coco_json: str | Path | None = None,
    variants: tuple[str, ...] | list[str] = ("fp32", "fp16", "int8"),
    backend: str = "ort-cpu",
    runner_factory: RunnerFactory,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Evaluate `variants` of the workspace's model on `images_dir` (see module doc), each run
    by `runner_factory(backend, model_path)`."""
    cancel = cancel or CancelToken()
    progress = progress or (lambda f, m: None)
    spec = ws.spec()
    images_dir = Path(images_dir)
    paths = {v: variant_model_path(ws, v) for v in variants}  # fail early on a missing variant
    image_set = ImageSet(images_dir)
    names = ["fp32", *(v for v in variants if v != "fp32")]  # the reference runs first
    if "fp32" not in paths:  # (run for agreement even when not asked for)
        paths["fp32"] = variant_model_path(ws, "fp32")
    results: dict[str, tuple[list[Any], dict, dict]] = {}
    refused: dict[str, str] = {}  # variants the backend would not run; the rest are still scored
    masks = MaskAgreement(spec) if MaskAgreement.applies(spec) else None
    for n, name in enumerate(names):
        share = 0.95 / len(names)
        try:
            results[name] = _run_variant(
                spec,
                paths[name],
                runner_factory,
                backend,
                image_set,
                cancel,
                progress,
                n * share,
                share,
                masks,
                name,
            )
        except UserError as exc:
            if name == "fp32":  # the reference: nothing can be scored without it
                raise
            log.warning("%s not evaluated: %s", name, exc)
            refused[name] = str(exc)
    variants = [v for v in variants if v not in refused]
    images, skipped = image_set.entries(), image_set.skipped
    overlap = calibration_overlap(ws, variants, [path for path, _ in images])
    report = {
        "task": spec.task,
        "model_sha256": spec.sha256,
        "images": len(images),
        "images_dir": str(images_dir),
        "skipped": [s.__dict__ for s in skipped],
        "refused": refused,
        **({"calibration_overlap": overlap} if overlap else {}),
        "variants": [],
    }
    per_image: dict[str, list] = {}  # per-image scores of each variant, for the intervals
    if spec.task == "detection":
        metrics = _detection_metrics(
            spec, images, results, labels_dir, coco_json, images_dir, report, per_image
        )
        for name in metrics if masks is not None else ():
            metrics[name].update(masks.metrics(name))
    else:
        metrics = _classification_metrics(
            spec, images, results, images_dir, report, labels_dir, per_image
        )
    progress(0.97, "confidence intervals")
    resamples = bootstrap.default_resamples(per_image)
    intervals = bootstrap.intervals(per_image, resamples=resamples)
    report["intervals"] = bootstrap.settings(resamples)
    for name in variants:
        _, info, lat = results[name]
        report["variants"].append(
            {
                "name": name,
                "backend": backend,
                "provider": info["provider"],
                "fallback": info["fallback"],
                "caveat": info.get("caveat", ""),
                "model": str(paths[name]),
                "sha256": ws.variant_sha256(name),
                "metrics": metrics[name],
                **intervals.get(name, {}),
                "latency_ms": lat,
            }
        )
    progress(1.0, "evaluation done")
    return report


def _detection_metrics(
    spec, images, results, labels_dir, coco_json, images_dir, report, per_image=None
):
    sizes = [(p, hw[0], hw[1]) for p, hw in images]
    gt, source, classes = detection_truth(spec.labels, sizes, images_dir, labels_dir, coco_json)
    if source and not coco_json:
        report["labels"] = source
    if classes:
        report["label_classes"] = classes
        if classes.get("note"):
            report["labels_note"] = classes["note"]
    if gt is None:  # said, as a classifier's missing labels are
        report["labels_note"] = (
            f"no box labels found: no {images_dir.resolve().parent / 'labels'} folder of YOLO .txt "
            "files beside the images and no COCO JSON given; give Labels (a YOLO .txt folder or a "
            "COCO instances JSON) to score accuracy"
        )
    reference = results["fp32"][0]
    agree_gt = agreement_gt(reference, sizes)
    metrics = {}
    for name, (dets, _, _) in results.items():
        m: dict[str, float] = {}
        coco_dets = detections_to_coco(dets, MAP_MAX_DET)
        if gt is not None:
            m.update(coco_map(gt, coco_dets))
        if agree_gt["annotations"]:
            agree = coco_map(agree_gt, coco_dets)
            m["agreement_mAP50_95"] = agree["mAP50_95"]
            m["agreement_mAP50"] = agree["mAP50"]
        m["matched_fp32"] = round(100 * _matched_fraction(reference, dets), 2)  # percent, as
        # the agreement columns beside it
        metrics[name] = m
        if per_image is not None:
            per_image[name] = [CocoMatches(gt, coco_dets)] if gt is not None else []
            if agree_gt["annotations"]:
                per_image[name].append(CocoMatches(agree_gt, coco_dets, prefix="agreement_"))
    report["labelled"] = gt is not None
    return metrics


def _matched_fraction(reference: list[Detections], dets: list[Detections], conf: float = 0.3):
    """Share of FP32 detections (score >= conf) this variant finds (same class, IoU >= 0.5)."""
    total = found = 0
    for ref, got in zip(reference, dets):
        ref = ref.filtered(conf)
        agreement = compare_detections(ref, got.filtered(conf))
        total += len(ref)
        found += agreement.matched
    return found / total if total else 1.0


def _classification_metrics(
    spec, images, results, images_dir, report, labels_dir=None, per_image=None
):
    found = class_truth(spec, images, images_dir, labels_dir)
    truth = found.truth
    labelled = np.array([bool(t) for t in truth])
    report["labelled"] = bool(labelled.any())
    report["labelled_images"] = int(labelled.sum())
    report.update({"labels": found.source} if found.source else {})
    report.update({"labels_note": found.note} if found.note else {})
    k = min(5, int(np.stack(results["fp32"][0]).shape[1]))  # "top5" of 2 classes is top2
    ref = np.argmax(np.stack(results["fp32"][0]), axis=1)
    metrics = {}
    for name, (probs_list, _, _) in results.items():
        probs = np.stack(probs_list)
        m = {"top1_agreement": round(float((np.argmax(probs, axis=1) == ref).mean() * 100), 2)}
        hits = {"top1_agreement": (np.argmax(probs, axis=1) == ref).astype(float)}
        if labelled.any():
            order = np.argsort(-probs, axis=1)
            rows = [i for i in range(len(truth)) if truth[i]]
            m["top1"] = round(100 * float(np.mean([order[i, 0] in truth[i] for i in rows])), 2)
            m[f"top{k}"] = round(
                100 * float(np.mean([bool(set(order[i, :k]) & truth[i]) for i in rows])), 2
            )
            hits["top1"] = np.array(
                [float(order[i, 0] in t) if t else np.nan for i, t in enumerate(truth)]
            )
            hits[f"top{k}"] = np.array(
                [float(bool(set(order[i, :k]) & t)) if t else np.nan for i, t in enumerate(truth)]
            )
        metrics[name] = m
        if per_image is not None:
            per_image[name] = [bootstrap.MeanOfImages(hits)]
    # FP32 answering one class for most images, or near chance, means misfed pixels
    share = float(np.bincount(ref).max() / len(ref)) if len(ref) else 0.0
    report["fp32_top_class_share"] = round(share, 4)
    top1 = metrics["fp32"].get("top1")
    classes = int(np.stack(results["fp32"][0]).shape[1])
    alarm = collapse_alarm(share, classes, None if top1 is None else top1 / 100)
    report.update({"preprocessing_alarm": alarm} if alarm else {})
    return metrics


class Scorer:
    """Scores candidate graphs of one workspace on one folder, decoding the images and running
    FP32 once (for the mixed-precision search, which scores many candidates)."""

    def __init__(
        self,
        ws: Workspace,
        images_dir: str | Path,
        *,
        labels_dir: str | Path | None = None,
        coco_json: str | Path | None = None,
        backend: str = "ort-cpu",
        runner_factory: RunnerFactory,
        cancel: CancelToken | None = None,
    ) -> None:
        self.ws = ws
        self.runner_factory = runner_factory
        self.spec = ws.spec()
        self.images_dir = Path(images_dir)
        self.labels_dir, self.coco_json, self.backend = labels_dir, coco_json, backend
        self.cancel = cancel or CancelToken()
        self.image_set = ImageSet(self.images_dir)
        self.fp32 = _run_variant(
            self.spec,
            variant_model_path(ws, "fp32"),
            runner_factory,
            backend,
            self.image_set,
            self.cancel,
            lambda f, m: None,
            0.0,
            0.0,
        )
        self.images, self.skipped = self.image_set.entries(), self.image_set.skipped
        self.report: dict[str, Any] = {}
        self.reference = self._metrics(self.fp32)["fp32"]
        labelled = self.report.get("labelled", False)
        if self.spec.task == "detection":
            self.metric = "mAP50_95" if labelled else "agreement_mAP50_95"
        else:
            self.metric = "top1" if labelled else "top1_agreement"

    def _metrics(self, candidate: tuple) -> dict[str, dict[str, float]]:
        results = {"fp32": self.fp32, "candidate": candidate}
        if self.spec.task == "detection":
            return _detection_metrics(
                self.spec,
                self.images,
                results,
                self.labels_dir,
                self.coco_json,
                self.images_dir,
                self.report,
            )
        return _classification_metrics(
            self.spec, self.images, results, self.images_dir, self.report, self.labels_dir
        )

    def score(self, model_path: Path) -> tuple[dict[str, float], dict[str, float]]:
        """(metrics, latency percentiles) of one graph."""
        candidate = _run_variant(
            self.spec,
            model_path,
            self.runner_factory,
            self.backend,
            self.image_set,
            self.cancel,
            lambda f, m: None,
            0.0,
            0.0,
        )
        return self._metrics(candidate)["candidate"], candidate[2]
