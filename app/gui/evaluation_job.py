"""The Results tab's evaluation, worker side: `evaluate` on the chosen backend, its report
saved where the CLI saves it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.atomic import write_json
from app.core.model.workspace import Workspace


def run_evaluation(
    ws: Workspace,
    images: str,
    labels: str,
    variants: list[str],
    backend: str,
    *,
    progress: Any,
    cancel: Any,
) -> Path:
    """Worker side: evaluate, then save the report where the CLI does; returns its path."""
    from app.backends.factory import make_runner
    from app.backends.tensorrt.workspace_engines import engine_runner_factory
    from app.core.eval.evaluate import evaluate

    truth: dict[str, Any] = {}
    if labels:
        key = "coco_json" if labels.lower().endswith(".json") else "labels_dir"
        truth = {key: labels}
    report = evaluate(
        ws,
        images,
        variants=variants,
        backend=backend,
        runner_factory=engine_runner_factory(ws, make_runner),  # engines on tensorrt
        progress=progress,
        cancel=cancel,
        **truth,
    )
    path = ws.evaluation_path(backend)
    write_json(path, report)
    return path
