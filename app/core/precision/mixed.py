"""Automatic mixed precision: keep the fewest most-sensitive blocks in float that bring the INT8
graph close to FP32, judged on images the search may look at and checked on images it never saw.

The objective is agreement with FP32 (detector: mAP50-95 of the candidate measured against FP32's
own detections; classifier: top-1 agreement) over a pool of images that needs no labels - the
evaluation folder plus any folders or videos given, less the calibration images - and, where the
folder has labels, the accuracy drop on its labelled images. Judged on a few labelled photos
alone, the search over-fitted them: `--target-drop 1.0` on coco-val-dev64 stopped at the default
recipe, which then lost 1.84 mAP50-95 on unseen photos. Agreement over a hundred or more images
moves far less with the luck of which photos were picked.

Every 4th image of each source is held out (app.core.eval.pool); the search never scores on it,
and the chosen graph, FP32 and the default recipe are reported on it with bootstrap intervals.
FP32 runs once per image; each trial runs only the candidate. Trials: the default recipe (and the
leading blocks plus the prediction heads), then the blocks ranked worst by
`precision.debug.analyse_layers` kept float in rank order within k = 0, 1, 2, 4, ... convolutions
up to the cap (10% of the compute ops by default, counting those every graph of the target keeps
float), the smallest passing k found by bisection. On ort-cpu the ranked trials quantize the
prediction heads too (placement heads-int8): the default keeps those 9 convs of YOLOX-Nano float,
which alone used 9 of its 11-conv cap and left the search 2 convs, too few for the stem, so every
ranked trial was worse than the default (unseen video agreement 44.5 against 71.1). A trial
passes when its agreement reaches `min_agreement` and its labelled drop is at most
`target_drop`; when none within the cap passes, the one closest to FP32 is kept.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import onnx

from app.core import defaults
from app.core.errors import CancelToken
from app.core.eval.evaluate import RunnerFactory
from app.core.eval.pool import MAX_SEARCH_IMAGES, build_pool
from app.core.eval.pool_scorer import PoolScorer
from app.core.model.workspace import Workspace
from app.core.precision.debug import analyse_layers
from app.core.quant.calibration import latest_calibration
from app.core.quant.graph_rules import (
    compute_nodes,
    head_compute_nodes,
    name_nodes,
)
from app.core.quant.quantize import make_int8, quantize
from app.core.quant.recipe import stem_nodes
from app.core.quant.sensitive_blocks import ensure_sensitive_blocks
from app.core.quant.targets import EQUALIZE_BY_DEFAULT
from app.core.safe_json import load_json

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
# the placement of the ranked trials per target (see the module doc), where the calibration has
# the ranges it needs (a classifier's logits are float-tail tensors it does not collect)
RANKED_PLACEMENT = {
    "ort-cpu": "heads-int8",
    "tensorrt": "default",
    "ort-cuda": "default",
    "openvino": "default",
}


def ladder(top: int) -> list[int]:
    """0, 1, 2, 4, ... below `top`, then `top` itself: the first trials of the bisection."""
    ks, k = [], 0
    while k < top:
        ks.append(k)
        k = 1 if k == 0 else 2 * k
    return [*ks, max(top, 0)]


def search_mixed_precision(
    ws: Workspace,
    images_dir: str | Path,
    *,
    labels_dir: str | Path | None = None,
    coco_json: str | Path | None = None,
    pool: Sequence[str | Path] = (),
    target_drop: float = defaults.TARGET_DROP,
    min_agreement: float | None = None,
    target: str = "ort-cpu",
    max_fraction: float = defaults.MAX_FLOAT_FRACTION,
    max_search_images: int = MAX_SEARCH_IMAGES,
    variant_name: str = defaults.MIXED_VARIANT_NAME,
    analysis: dict[str, Any] | None = None,
    runner_factory: RunnerFactory,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Run the search (see module doc) on `images_dir` plus the `pool` folders and videos;
    builds `variant_name` in the workspace and returns the report: the chosen trial's search
    and held-out figures, "layers_kept" and the table of every trial. Candidates run through
    `runner_factory` (app.backends.factory.make_runner in the app)."""
    cancel = cancel or CancelToken()
    progress = progress or (lambda f, m: None)
    t0 = time.perf_counter()
    spec = ws.spec()
    calib = latest_calibration(ws)
    # the "default recipe" trial is the default INT8 graph, sensitive blocks float included
    ensure_sensitive_blocks(ws, calib, target, make_int8, cancel)
    if analysis is None:
        analysis = analyse_layers(
            ws,
            target=target,
            calibration=calib,
            cancel=cancel,
            progress=lambda f, m: progress(0.25 * f, m),
        )
    progress(0.26, "reading the pool")
    used = load_json(calib / "meta.json").get("images_used") or []
    images = build_pool(images_dir, pool, exclude=used, max_search=max_search_images, cancel=cancel)
    progress(0.3, f"FP32 on {len(images.search)} + {len(images.held_out)} images")
    scorer = PoolScorer(
        ws,
        images,
        images_dir,
        labels_dir=labels_dir,
        coco_json=coco_json,
        runner_factory=runner_factory,
        cancel=cancel,
    )
    if min_agreement is None:
        min_agreement = defaults.MIN_AGREEMENT[scorer.spec.task]
    metric, lmetric = scorer.agreement_metric, scorer.label_metric
    ref = scorer.reference["search"]
    model = name_nodes(onnx.load(spec.path))
    total = len(compute_nodes(model))
    cap = max(1, int(max_fraction * total))
    placement = ranked_placement(target, Path(spec.path), calib / "ranges.json")
    always = len(_always_float_nodes(target, model, placement))
    ranking = [b["nodes"] for b in analysis["blocks"]]
    trials: list[dict[str, Any]] = []
    ranges = calib / "ranges.json"
    # trials, the default recipe and the variant built at the end are equalised alike
    equalized = {"equalize_with": spec} if EQUALIZE_BY_DEFAULT[target] else {}

    def trial(label: str, keep: list[str] | None, placement: str = "default") -> dict[str, Any]:
        cancel.check()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "candidate.onnx"
            info = make_int8(
                Path(spec.path), ranges, path, target, keep, placement=placement, **equalized
            )
            m = scorer.score(path, "search")
        row = {
            "trial": label,
            "compute_ops_float": info["compute_ops_kept_float"],
            "within_cap": info["compute_ops_kept_float"] <= cap,
            "kept_float": info["kept_float"],
            "metric": metric,
            "value": m[metric],
            "drop": round(ref[metric] - m[metric], 3),
            "latency_p50_ms": m["latency_p50_ms"],
            "placement": placement,
            "keep": keep,
        }
        passes = m[metric] >= min_agreement
        if lmetric in m:
            row.update(
                {"labelled": m[lmetric], "labelled_drop": round(ref[lmetric] - m[lmetric], 3)}
            )
            passes = passes and row["labelled_drop"] <= target_drop
        row["passes"] = passes
        trials.append(row)
        log.info(
            "%s: %s %.2f, %d compute ops float", label, metric, m[metric], len(info["kept_float"])
        )
        progress(min(0.88, 0.35 + 0.05 * len(trials)), f"{label}: {metric} {row['value']}")
        return row

    trial("default recipe (leading blocks float)", None)
    if target != "ort-cpu":  # on ort-cpu the heads are float anyway: the same graph again
        stem = stem_nodes(model)
        trial("leading blocks + prediction heads float", stem + head_compute_nodes(model))

    # the convs a block would add: those the target keeps float anyway cost nothing
    convs = set(compute_nodes(model)) - set(_always_float_nodes(target, model, placement))

    built: dict[tuple[str, ...], dict[str, Any]] = {}

    def ranked(k: int) -> dict[str, Any]:
        """The trial of budget k; a budget that fills to the same nodes as a smaller one (no
        block fits the extra convs) reuses that trial instead of building it again."""
        keep = fill(ranking, convs, k)
        key = tuple(sorted(keep))
        if key not in built:
            built[key] = trial(f"worst-ranked blocks, {k} convs", keep, placement)
        return built[key]

    results: dict[int, dict[str, Any]] = {}
    last_fail = -1
    for k in ladder(min(max(cap - always, 0), len(convs))):
        results[k] = ranked(k)
        if results[k]["passes"]:
            break
        last_fail = k
    passing = [kk for kk, r in results.items() if r["passes"]]
    if passing:
        hi, lo = min(passing), last_fail
        while hi - lo > 1:
            mid = (lo + hi) // 2
            results[mid] = ranked(mid)
            hi, lo = (mid, lo) if results[mid]["passes"] else (hi, mid)
    best, reached = choose(trials)
    progress(0.9, f"building {variant_name}")
    meta = quantize(
        ws,
        precisions=["int8"],
        target=target,
        keep_float=best["keep"],
        placement=best["placement"],
        variant_name=variant_name,
        cancel=cancel,
    )[0]
    progress(0.92, f"checking {variant_name} on {len(images.held_out)} held-out images")
    held_out = _held_out(
        scorer, ws.variant_path(variant_name), Path(spec.path), ranges, target, equalized
    )
    report = {
        "variant": variant_name,
        "target": target,
        "metric": metric,
        "labelled_metric": lmetric if scorer.labelled else None,
        "labels": scorer.labels_source or None,
        "fp32": ref[metric],
        "int8": best["value"],
        "drop": best["drop"],
        "fp32_labelled": ref.get(lmetric),
        "labelled": best.get("labelled"),
        "labelled_drop": best.get("labelled_drop"),
        "target_drop": target_drop,
        "min_agreement": min_agreement,
        "reached": reached,
        "layers_kept": meta["compute_ops_kept_float"],
        "compute_ops": total,
        "max_fraction": max_fraction,
        "cap": cap,
        "kept_float": meta["kept_float"],
        "chosen_trial": best["trial"],
        "closer_over_cap": _closer_over_cap(trials, best),
        "images": images.describe(),
        "held_out": held_out,
        "trials": [{k: v for k, v in r.items() if k != "keep"} for r in trials],
        "analysis": {
            "images": analysis["images"],
            "seconds": analysis["seconds"],
            "blocks": analysis["blocks"][:20],
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if not reached:
        log.warning(
            "no trial within %d float compute ops reached agreement %.1f%s; kept the closest to "
            "FP32 (%s)",
            cap,
            min_agreement,
            f" and a labelled drop <= {target_drop}" if scorer.labelled else "",
            best["trial"],
        )
    progress(1.0, f"{variant_name}: held-out {metric} {held_out['chosen']['metrics'][metric]}")
    return report


def fill(ranking: list[list[str]], convs: set[str], budget: int) -> list[str]:
    """Nodes of the worst-ranked blocks, taken in rank order while their compute ops fit in
    `budget` (a block too big for what is left is passed over for smaller ones after it): the
    cap counts convolutions, and a block holds one or several (its tensor's consumers)."""
    keep: list[str] = []
    used = 0
    for nodes in ranking:
        new = {n for n in nodes if n in convs and n not in keep}
        if used + len(new) <= budget:
            keep += [n for n in nodes if n not in keep]
            used += len(new)
        if used == budget:
            break
    return keep


def choose(trials: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """(trial, passed): the passing trial within the cap with the fewest float ops (the closer
    to FP32 on a tie), else the one within the cap closest to FP32 (agreement, then labels)."""
    within = [r for r in trials if r["within_cap"]] or [
        min(trials, key=lambda r: r["compute_ops_float"])
    ]
    passing = [r for r in within if r["passes"]]
    if passing:
        return min(passing, key=lambda r: (r["compute_ops_float"], -r["value"])), True
    best = max(within, key=lambda r: (r["value"], r.get("labelled", 0), -r["compute_ops_float"]))
    return best, False


def _closer_over_cap(trials: list[dict[str, Any]], best: dict[str, Any]) -> dict[str, Any] | None:
    """The trial over the cap closest to FP32 when it beats the chosen one (what raising the cap
    would buy: on ResNet-8 the default recipe keeps 2 of 10 convs float, over a 10% cap)."""
    over = [r for r in trials if not r["within_cap"] and r["value"] > best["value"]]
    if not over:
        return None
    r = max(over, key=lambda r: r["value"])
    return {k: r[k] for k in ("trial", "compute_ops_float", "value", "drop")}


def _held_out(
    scorer: PoolScorer,
    chosen: Path,
    source: Path,
    ranges: Path,
    target: str,
    equalized: dict[str, Any],
) -> dict[str, Any]:
    """FP32, the chosen graph and the default recipe on the held-out images (intervals by
    bootstrap over those images)."""
    out: dict[str, Any] = {"fp32": {"metrics": scorer.reference["held_out"]}}
    out["chosen"] = scorer.intervals(chosen, "held_out")
    out["fp32"]["metrics_ci"] = out["chosen"].pop("fp32_ci")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "default.onnx"
        info = make_int8(source, ranges, path, target, None, **equalized)
        out["default"] = scorer.intervals(path, "held_out")
        out["default"]["compute_ops_float"] = info["compute_ops_kept_float"]
    return out


def ranked_placement(target: str, source: Path, ranges: Path) -> str:
    """RANKED_PLACEMENT[target], or "default" when ONNX Runtime cannot quantize the prediction
    heads from this calibration (a classifier's logits are float-tail tensors it has no range
    for): found by building that graph once."""
    placement = RANKED_PLACEMENT[target]
    if placement != "heads-int8":
        return placement
    with tempfile.TemporaryDirectory() as tmp:
        try:
            make_int8(source, ranges, Path(tmp) / "probe.onnx", target, [], placement=placement)
        except ValueError as exc:  # ORT: "Quantization parameters are not specified for ..."
            log.info("ranked trials keep the prediction heads float: %s", exc)
            return "default"
    return placement


def _always_float_nodes(target: str, model: onnx.ModelProto, placement: str) -> list[str]:
    """Compute ops every ranked trial for this target keeps float: ORT CPU's prediction heads,
    unless those trials quantize them (`ranked_placement`)."""
    heads_float = target == "ort-cpu" and placement != "heads-int8"
    return head_compute_nodes(model) if heads_float else []
