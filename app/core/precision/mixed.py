"""Automatic mixed precision: keep the fewest most-sensitive blocks in float that bring the INT8
graph within an accuracy target of FP32, re-evaluating as it goes.

Cheap levers are tried first and reported alongside (the default recipe, which keeps the leading
blocks float; the leading blocks plus the prediction heads). Then the blocks ranked worst by
`precision_debug.analyse_layers` are kept float k = 0, 1, 2, 4, ... at a time, up to a cap
(15% of the compute ops by default), and the smallest passing k is found by bisection.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

from app.core.errors import CancelToken
from app.core.eval.evaluate import RunnerFactory, Scorer
from app.core.model.workspace import Workspace
from app.core.precision.debug import analyse_layers
from app.core.quant.calibration import latest_calibration
from app.core.quant.graph_rules import (
    compute_nodes,
    head_compute_nodes,
    leading_compute_blocks,
    name_nodes,
)
from app.core.quant.quantize import default_stem_blocks, make_int8, quantize

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


def search_mixed_precision(
    ws: Workspace,
    images_dir: str | Path,
    *,
    labels_dir: str | Path | None = None,
    coco_json: str | Path | None = None,
    target_drop: float = 1.0,
    target: str = "ort-cpu",
    max_fraction: float = 0.15,
    variant_name: str = "int8-mp",
    analysis: dict[str, Any] | None = None,
    runner_factory: RunnerFactory,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Run the search (see module doc); builds `variant_name` in the workspace and returns the
    report with "variant", "layers_kept" and the table of every trial. Candidates are scored
    with runners from `runner_factory` (app.backends.factory.make_runner in the app)."""
    cancel = cancel or CancelToken()
    progress = progress or (lambda f, m: None)
    t0 = time.perf_counter()
    spec = ws.spec()
    calib = latest_calibration(ws)
    if analysis is None:
        analysis = analyse_layers(
            ws,
            target=target,
            calibration=calib,
            cancel=cancel,
            progress=lambda f, m: progress(0.25 * f, m),
        )
    progress(0.27, "scoring FP32")
    scorer = Scorer(
        ws,
        images_dir,
        labels_dir=labels_dir,
        coco_json=coco_json,
        runner_factory=runner_factory,
        cancel=cancel,
    )
    ref = scorer.reference[scorer.metric]
    model = name_nodes(onnx.load(spec.path))
    total = len(compute_nodes(model))
    cap = max(1, int(max_fraction * total))
    ranking = [b["nodes"] for b in analysis["blocks"]]
    trials: list[dict[str, Any]] = []

    def trial(label: str, keep: list[str] | None) -> dict[str, Any]:
        cancel.check()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "candidate.onnx"
            info = make_int8(Path(spec.path), calib / "ranges.json", path, target, keep)
            metrics, latency = scorer.score(path)
        row = {
            "trial": label,
            "compute_ops_float": info["compute_ops_kept_float"],
            "kept_float": info["kept_float"],
            "metric": scorer.metric,
            "value": metrics[scorer.metric],
            "drop": round(ref - metrics[scorer.metric], 3),
            "latency_p50_ms": latency["p50"],
            "passes": ref - metrics[scorer.metric] <= target_drop,
            "keep": keep,
        }
        trials.append(row)
        log.info(
            "%s: %s %.2f (fp32 %.2f), %d compute ops float",
            label,
            scorer.metric,
            row["value"],
            ref,
            row["compute_ops_float"],
        )
        progress(min(0.95, 0.3 + 0.06 * len(trials)), f"{label}: {scorer.metric} {row['value']}")
        return row

    trial("default recipe (leading blocks float)", None)
    stem = leading_compute_blocks(model, default_stem_blocks(model))
    trial("leading blocks + prediction heads float", stem + head_compute_nodes(model))

    def keep_k(k: int) -> list[str]:
        return [n for nodes in ranking[:k] for n in nodes]

    results: dict[int, dict[str, Any]] = {}
    k, last_fail = 0, -1
    while k <= min(cap - _always_float(target, model), len(ranking)):
        results[k] = trial(f"{k} worst-ranked blocks float", keep_k(k))
        if results[k]["passes"]:
            break
        last_fail = k
        k = 1 if k == 0 else k * 2
    passing = [kk for kk, r in results.items() if r["passes"]]
    if passing:
        hi = min(passing)
        lo = last_fail
        while hi - lo > 1:
            mid = (lo + hi) // 2
            results[mid] = trial(f"{mid} worst-ranked blocks float", keep_k(mid))
            if results[mid]["passes"]:
                hi = mid
            else:
                lo = mid
    candidates = [
        r
        for r in trials
        if r["passes"] and r["compute_ops_float"] <= cap + _always_float(target, model)
    ]
    if candidates:
        best = min(candidates, key=lambda r: (r["compute_ops_float"], -r["value"]))
        reached = True
    else:
        best = max(trials, key=lambda r: r["value"])
        reached = False
    progress(0.96, f"building {variant_name}")
    meta = quantize(
        ws,
        precisions=["int8"],
        target=target,
        keep_float=best["keep"],
        variant_name=variant_name,
        cancel=cancel,
    )[0]
    report = {
        "variant": variant_name,
        "target": target,
        "metric": scorer.metric,
        "fp32": ref,
        "int8": best["value"],
        "drop": best["drop"],
        "target_drop": target_drop,
        "reached": reached,
        "layers_kept": meta["compute_ops_kept_float"],
        "compute_ops": total,
        "kept_float": meta["kept_float"],
        "chosen_trial": best["trial"],
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
            "target drop %.2f not reached within %d float compute ops; kept the best trial (%s)",
            target_drop,
            cap,
            best["trial"],
        )
    progress(1.0, f"{variant_name}: {scorer.metric} {best['value']} (fp32 {ref})")
    return report


def _always_float(target: str, model: onnx.ModelProto) -> int:
    """Compute ops every graph for this target keeps float (ORT CPU: the prediction heads)."""
    return len(head_compute_nodes(model)) if target == "ort-cpu" else 0
