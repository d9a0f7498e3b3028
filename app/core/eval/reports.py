"""Evaluation and benchmark reports as tables: reading, merging a benchmark in, flattening.

Qt-free, so the Results panel shows what these functions return and tests check them on the
reports `evaluate` and `bench` really write. An evaluation report is evaluate()'s dict (one entry
per variant and backend under "variants"); a benchmark is bench's dict (entries under "results").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.errors import UserError
from app.core.safe_json import load_json

LATENCY_KEYS = ("p50", "p90", "p99")
BENCH_FILE = "bench.json"


def read_report(path: str | Path) -> dict[str, Any]:
    """A results file as a dict, through the size- and depth-capped reader; UserError naming
    the file when it cannot be read or is not a JSON object."""
    try:
        return load_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable results file ({exc}); choose another") from exc


def is_bench(report: dict[str, Any]) -> bool:
    """Whether a report is a benchmark (bench's shape) rather than an evaluation."""
    return "results" in report and "variants" not in report


def provider_text(provider: Any) -> str:
    """'CPUExecutionProvider' -> 'CPU' (the full name is in the file)."""
    return str(provider or "").removesuffix("ExecutionProvider")


def bench_rows(bench: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """bench.json results by (variant, backend); skipped backends have no latency and drop out."""
    return {
        (str(r["variant"]), str(r.get("backend", ""))): r
        for r in bench.get("results", [])
        if isinstance(r, dict) and "variant" in r and isinstance(r.get("latency_ms"), dict)
    }


def bench_as_report(bench: dict[str, Any]) -> dict[str, Any]:
    """A bench.json alone, in evaluate()'s shape (throughput as the metric)."""
    return {
        "task": "benchmark",
        "variants": [
            {
                "name": variant,
                "backend": backend,
                "provider": r.get("provider", ""),
                "metrics": {"throughput_fps": r.get("throughput_fps")},
                "latency_ms": r["latency_ms"],
                # timed by `bench` (in turns), which the speed verdicts say they rest on
                "bench": {"p50": r["latency_ms"].get("p50"), "fps": r.get("throughput_fps")},
                **({"fallback": r["fallback"]} if r.get("fallback") else {}),
                **({"caveat": r["caveat"]} if r.get("caveat") else {}),
            }
            for (variant, backend), r in bench_rows(bench).items()
        ],
    }


def with_bench(report: dict[str, Any], bench: dict[str, Any]) -> dict[str, Any]:
    """An evaluation with the benchmark's infer-only p50 and FPS added to matching rows: same
    variant and backend and, where both files record it, the same graph (a variant rebuilt
    between the two runs is not the one the benchmark timed). A benchmark row that fell back
    to another provider, or ran with a caveat, carries its note along."""
    rows = bench_rows(bench)
    out = dict(report, variants=[])
    for v in report.get("variants", []):
        r = rows.get((str(v.get("name")), str(v.get("backend"))))
        if r is not None and not (
            v.get("sha256") and r.get("sha256") and v["sha256"] != r["sha256"]
        ):
            v = dict(v, bench={"p50": r["latency_ms"].get("p50"), "fps": r.get("throughput_fps")})
            for key in ("fallback", "caveat"):  # what the timed run said carries along
                if r.get(key) and not v.get(key):
                    v[key] = r[key]
        out["variants"].append(v)
    return out


def same_model(report: dict[str, Any], bench: dict[str, Any], folder: Path) -> bool:
    """Whether a bench.json beside an evaluation measured the same model: both record the
    model's hash and they match, or (files from before the hash was recorded) both sit in one
    workspace's results folder, which belongs to one model."""
    a, b = report.get("model_sha256"), bench.get("model_sha256")
    if a and b:
        return a == b
    return not (a or b) and folder.name == "results" and (folder.parent / "spec.json").is_file()


def load_results(path: str | Path) -> dict[str, Any]:
    """A results file in evaluate()'s shape: a benchmark alone as throughput rows, or an
    evaluation with the bench.json beside it merged in when it measured the same model."""
    path = Path(path)
    report = read_report(path)
    if is_bench(report):
        return bench_as_report(report)
    bench = path.parent / BENCH_FILE
    if bench.is_file() and bench != path:
        try:
            other = read_report(bench)
        except UserError:
            return report  # the evaluation alone is still worth showing
        if same_model(report, other, path.parent):
            return with_bench(report, other)
    return report


# what two evaluations must share to be read as one table: the model, the images, the labels
SAME_RUN_KEYS = ("task", "model_sha256", "images", "images_dir", "labels", "coco_json")


def all_backends(paths: list[Path]) -> dict[str, Any] | None:
    """The evaluations among `paths` (each of one backend, its benchmark merged in as
    `load_results` does) as one report, when two or more backends scored the same model on
    the same images with the same labels as the first (newest) readable one; else None. Each
    row keeps its backend: verdicts judge it against its own backend's fp32, and the last one
    names the fastest backend's choice (`recommend.across_backends`)."""
    reports: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        if path.name == BENCH_FILE:
            continue
        try:
            reports.append((path.stem.removeprefix("evaluate-"), load_results(path)))
        except UserError:
            continue  # the panel lists it; choosing it says why it cannot be read
    if not reports:
        return None
    first = reports[0][1]
    same = [(b, r) for b, r in reports if all(r.get(k) == first.get(k) for k in SAME_RUN_KEYS)]
    variants = [v for _b, r in same for v in r.get("variants") or [] if isinstance(v, dict)]
    if len({v.get("backend") for v in variants}) < 2:
        return None
    refused = {
        f"{name} on {backend}": why
        for backend, r in same
        for name, why in (r["refused"] if isinstance(r.get("refused"), dict) else {}).items()
    }
    return {**first, "variants": variants, "refused": refused, "backends": [b for b, _r in same]}


def metric_names(variants: list[dict[str, Any]]) -> list[str]:
    """The numeric metrics of these rows, in the order they first appear."""
    names: list[str] = []
    for v in variants:
        for key, value in (v.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and key not in names:
                names.append(key)
    return names


def flatten(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """evaluate()-shaped dict -> (column names, rows): one row per variant and backend."""
    metric_keys = metric_names(report.get("variants", []))
    columns = ["variant", "backend", "provider", *metric_keys]
    columns += [f"latency {k} (ms)" for k in LATENCY_KEYS]
    has_bench = any(v.get("bench") for v in report.get("variants", []))
    if has_bench:
        columns += ["bench p50 (ms)", "bench fps"]
    rows = []
    for v in report.get("variants", []):
        metrics = v.get("metrics") or {}
        latency = v.get("latency_ms") or {}
        rows.append(
            [v.get("name", ""), v.get("backend", ""), provider_text(v.get("provider", ""))]
            + [metrics.get(k) for k in metric_keys]
            + [latency.get(k) for k in LATENCY_KEYS]
            + ([(v.get("bench") or {}).get(k) for k in ("p50", "fps")] if has_bench else [])
        )
    return columns, rows


def metric_columns(columns: list[str]) -> list[str]:
    """The accuracy-like columns of flatten()'s header (what the scatter's y axis can show)."""
    return [c for c in columns[3:] if not c.startswith(("latency ", "bench "))]


def latency_axis(report: dict[str, Any]) -> str:
    """Which p50 the scatter plots: the benchmark's (infer-only, the one the verdict under the
    table uses) when every row has one, else the evaluation's own; the axis title says which."""
    rows = report.get("variants", [])
    merged = bool(rows) and all(
        isinstance((v.get("bench") or {}).get("p50"), float | int) for v in rows
    )
    return "bench p50 (ms)" if merged else "latency p50 (ms)"


def scatter_points(
    report: dict[str, Any], metric: str
) -> tuple[list[float], list[float], list[str]]:
    """(p50 latency, metric, 'variant · backend') of every row that has both numbers; the
    latency is the one `latency_axis` names."""
    bench = latency_axis(report).startswith("bench")
    xs, ys, names = [], [], []
    for v in report.get("variants", []):
        x = (v.get("bench") if bench else v.get("latency_ms") or {}).get("p50")
        y = (v.get("metrics") or {}).get(metric)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            xs.append(float(x))
            ys.append(float(y))
            names.append(f"{v.get('name')} · {v.get('backend')}")
    return xs, ys, names


def caption(report: dict[str, Any]) -> str:
    """One line on what the table shows: task, image count, whether scored against labels."""
    images = f" on {report['images']} images" if report.get("images") else ""
    labelled = report.get("labelled")
    truth = "" if labelled is None else (" (labelled)" if labelled else " (vs fp32)")
    return f"{report.get('task', '')}{images}{truth}: {len(report.get('variants', []))} rows"


def cell_text(value: Any) -> str:
    """A table cell: a dash for a missing number, four significant digits for a float."""
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def with_interval(value: Any, ci: Any = None) -> str:
    """A metric and its 95% interval, '74.4 [70.8, 78.0]'; the bare cell without one."""
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2 and isinstance(value, (int, float))):
        return cell_text(value)
    return f"{value:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]"


def interval_of(variant: dict[str, Any], metric: str, kind: str = "metrics_ci") -> Any:
    """A variant's [lo, hi] for `metric` ("metrics_ci") or for its difference to fp32
    ("diff_ci"); None when the report has none (older reports, unscored metrics)."""
    found = variant.get(kind)
    return found.get(metric) if isinstance(found, dict) else None


def diff_text(variant: dict[str, Any], reference: dict[str, Any] | None, metric: str) -> str:
    """'int8 - fp32: -0.4 [-1.6, 0.8]' for one metric ('' without a paired interval)."""
    ci = interval_of(variant, metric, "diff_ci")
    a = (variant.get("metrics") or {}).get(metric)
    b = ((reference or {}).get("metrics") or {}).get(metric)
    if ci is None or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return ""
    return f"{variant.get('name')} - fp32: {with_interval(round(a - b, 2), ci)}"


LABELLED_FIRST = ("mAP50_95", "top1", "mAP50")  # what a first look at accuracy should show


def default_metric(metrics: list[str]) -> str:
    """The accuracy column to plot first: a labelled metric when the report has one (agreement
    with FP32 only measures drift), else the first column; '' when there are none."""
    for name in LABELLED_FIRST:
        if name in metrics:
            return name
    return metrics[0] if metrics else ""


def labels_note(report: dict[str, Any]) -> str:
    """Why an evaluation scored agreement with FP32 instead of labels ('' when it did not, or
    the report predates the note)."""
    note = report.get("labels_note")
    if not isinstance(note, str) or not note:
        return ""
    return note if report.get("labelled") else f"scored as agreement with fp32: {note}"
