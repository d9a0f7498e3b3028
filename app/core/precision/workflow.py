"""The Precision panel's jobs, without Qt: analyse and save, search, and build-and-score a chosen
set of float blocks against FP32 and the current INT8 variant (also usable from scripts)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.atomic import write_json
from app.core.model.workspace import Workspace
from app.core.quant.targets import variant_name

if TYPE_CHECKING:  # the jobs import their heavy modules when they run, not when the panel loads
    from app.core.eval.evaluate import RunnerFactory


def variant_for(base: str, target: str) -> str:
    """Variant name per target, the way quantize names int8 / int8-trt / int8-ov."""
    return variant_name(base, target)


def analysis_path(ws: Workspace, target: str) -> Path:
    return ws.path("results", f"precision-analysis-{target}.json")


def truth_args(labels: str) -> dict[str, str]:
    """The labels field as Scorer / search keyword arguments (a .json is COCO, else YOLO txt)."""
    if not labels:
        return {}
    return {"coco_json": labels} if labels.lower().endswith(".json") else {"labels_dir": labels}


def run_analysis(ws: Workspace, target: str, count: int, *, progress: Any, cancel: Any) -> dict:
    """analyse_layers, saved in the workspace's results so reopening the model shows it again."""
    from app.core.precision.debug import analyse_layers

    result = analyse_layers(ws, target=target, count=count, progress=progress, cancel=cancel)
    write_json(analysis_path(ws, target), result)
    return result


def run_auto(
    ws: Workspace,
    images: str,
    labels: str,
    target: str,
    target_drop: float,
    analysis: dict | None,
    count: int,
    *,
    runner_factory: RunnerFactory,
    progress: Any,
    cancel: Any,
    pool: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The mixed-precision search (analysing first when there is no analysis for `target`) on
    `images` plus the `pool` folders and videos, scoring with runners from `runner_factory`
    (app.backends.factory.make_runner in the app)."""
    from app.core.precision.mixed import search_mixed_precision

    share = 0.0
    if analysis is None:
        share = 0.3
        analysis = run_analysis(
            ws, target, count, progress=lambda f, m: progress(share * f, m), cancel=cancel
        )
    report = search_mixed_precision(
        ws,
        images,
        pool=pool,
        target_drop=target_drop,
        target=target,
        variant_name=variant_for("int8-mp", target),
        analysis=analysis,
        runner_factory=runner_factory,
        progress=lambda f, m: progress(share + (1 - share) * f, m),
        cancel=cancel,
        **truth_args(labels),
    )
    return {"analysis": analysis, "report": report}


def run_custom(
    ws: Workspace,
    images: str,
    labels: str,
    target: str,
    keep: list[str],
    *,
    runner_factory: RunnerFactory,
    progress: Any,
    cancel: Any,
) -> dict[str, Any]:
    """Build the variant with exactly `keep` float and score it, FP32 and a baseline (the
    target's current INT8 variant, else the all-INT8 graph) with one scorer on one folder, whose
    runners come from `runner_factory`."""
    from app.core.eval.evaluate import Scorer
    from app.core.quant.calibration import latest_calibration
    from app.core.quant.quantize import make_int8, quantize
    from app.core.quant.recipe import int8_variant_name

    progress(0.05, "scoring FP32")
    scorer = Scorer(ws, images, runner_factory=runner_factory, cancel=cancel, **truth_args(labels))
    metric = scorer.metric
    ref = scorer.reference[metric]
    rows = [
        {
            "role": "FP32",
            "variant": "fp32",
            "float_ops": None,
            "value": ref,
            "latency": scorer.fp32[2]["p50"],
        }
    ]
    current = int8_variant_name(target)
    progress(0.3, f"scoring {current}")
    if ws.valid_variant(current):
        meta = ws.variant_meta(current) or {}
        metrics, latency = scorer.score(ws.variant_path(current))
        before = {"variant": current, "float_ops": meta.get("compute_ops_kept_float")}
    else:
        spec = ws.spec()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "all-int8.onnx"
            info = make_int8(
                Path(spec.path), latest_calibration(ws) / "ranges.json", path, target, []
            )
            metrics, latency = scorer.score(path)
        before = {"variant": "all INT8", "float_ops": info["compute_ops_kept_float"]}
    rows.append({"role": "before", **before, "value": metrics[metric], "latency": latency["p50"]})
    name = variant_for("int8-custom", target)
    progress(0.55, f"building {name}")
    meta = quantize(
        ws, precisions=["int8"], target=target, keep_float=keep, variant_name=name, cancel=cancel
    )[0]
    progress(0.75, f"scoring {name}")
    metrics, latency = scorer.score(ws.variant_path(name))
    rows.append(
        {
            "role": "after",
            "variant": name,
            "float_ops": meta.get("compute_ops_kept_float"),
            "value": metrics[metric],
            "latency": latency["p50"],
        }
    )
    for row in rows:
        row["drop"] = round(ref - row["value"], 3)
    progress(1.0, f"{name}: {metric} {rows[-1]['value']:.4g} (fp32 {ref:.4g})")
    return {"metric": metric, "variant": name, "rows": rows}
