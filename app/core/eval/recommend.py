"""Which variant to use: per backend, the fastest one whose accuracy stays within the user's
target of FP32's, and the plain truth where INT8 is not faster than FP32 (issue 17).

Reads an evaluate()-shaped report, with the benchmark's infer-only p50 merged in by
`reports.with_bench` where one was measured for the same model. On each backend, FP32's score
is the reference: with labels a variant meets the target when its score is at most `max_drop`
points below FP32's; without labels (agreement with FP32's own outputs) when its agreement
reaches the task's bar in `defaults.MIN_AGREEMENT` (detection 92, classification 98). Latency
is the benchmark's p50 when there is one, else the evaluation's own per-image p50; the sentence
says which. A row that ran on another provider than its backend (ONNX Runtime fell back to the
CPU) is never recommended: its latency is not the backend's. A benchmark alone
(`reports.bench_as_report`) gets the fastest variant named without an accuracy judgement.

Qt-free: `evaluate`, `bench` and the Results panel print or show the lines it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.core import defaults
from app.core.eval.reports import default_metric, interval_of, metric_names
from app.core.timing import SAME_SPEED_BAND, speed_verdict

# Ties go to the more precise variant: fp32, then fp32-prep (same outputs, one rewrite), fp16
PRECISION_RANK = {"fp32": 0, defaults.PREPARED_FP32: 1, "fp16": 2}
AGREEMENT = "agreement"  # in the name of every metric scored against FP32's outputs


@dataclass
class Recommendation:
    """What one backend's rows say: the variant to use (None when none can be judged) and the
    sentences behind it, the recommendation first."""

    backend: str
    metric: str
    max_drop: float
    variant: str | None
    lines: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the report's rows it judged


def latency_of(variant: dict[str, Any]) -> tuple[float | None, str]:
    """(p50 ms, where it comes from): the benchmark's when merged in, else the evaluation's."""
    bench = (variant.get("bench") or {}).get("p50")
    if isinstance(bench, (int, float)) and bench > 0:
        return float(bench), "bench"
    p50 = (variant.get("latency_ms") or {}).get("p50")
    if isinstance(p50, (int, float)) and p50 > 0:
        return float(p50), "evaluation"
    return None, ""


def _score(variant: dict[str, Any], metric: str) -> float | None:
    value = (variant.get("metrics") or {}).get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def recommend_backend(
    rows: list[dict[str, Any]], backend: str, metric: str, max_drop: float, task: str = ""
) -> Recommendation:
    """The recommendation for one backend's rows (see the module doc). A labelled metric's
    target is FP32's score less `max_drop`; an agreement metric's (no labels: scored against
    FP32's own outputs) is the task's bar in `defaults.MIN_AGREEMENT`."""
    out = Recommendation(backend, metric, max_drop, None, rows=list(rows))
    fp32 = next((v for v in rows if v.get("name") == "fp32"), None)
    agreement = AGREEMENT in metric
    reference = _score(fp32, metric) if fp32 is not None else None
    if reference is None and agreement:
        reference = 100.0  # FP32 agrees with itself
    fp32_ms = latency_of(fp32)[0] if fp32 is not None else None
    usable, notes = [], []
    for v in rows:
        name = str(v.get("name", ""))
        if v.get("fallback"):
            why = v["fallback"]
            notes.append(f"{name} is not considered: it did not run as asked on {backend} ({why})")
            continue
        if v.get("caveat"):  # it ran where asked: judged, with what was different said
            notes.append(f"{name} ran on {backend} with a caveat: {v['caveat']}")
        ms, _ = latency_of(v)
        if ms is None:
            notes.append(f"{name} is not considered: no latency was measured")
            continue
        usable.append((ms, name, v))
    if not usable:
        out.lines.append(f"{backend}: no variant has a measured latency to compare")
        return _finish(out, notes)
    if reference is None:
        ms, name, _v = min(usable, key=lambda t: t[0])
        # fp32-prep computes FP32's outputs (checked when built): its speed alone can choose it
        faster = bool(fp32_ms) and ms < fp32_ms * (1 - SAME_SPEED_BAND)
        exact = not metric and name == defaults.PREPARED_FP32 and faster
        if exact:
            out.variant = name
            out.lines.append(
                f"{backend}: use {name}, the fastest ({ms:.3g} ms p50, {ms / fp32_ms:.2f}x "
                "fp32's latency): it computes fp32's outputs (checked when it was built); the "
                "other variants' accuracy is not measured here: evaluate them to judge it"
            )
        else:
            why = (
                f"with no fp32 row its {metric} cannot be judged; evaluate fp32 too"
                if metric
                else "accuracy is not measured here; evaluate the variants to judge it"
            )
            out.lines.append(f"{backend}: fastest is {name} ({ms:.3g} ms p50); {why}")
        out.lines.extend(_slow_int8(usable, fp32_ms, backend, name if exact else ""))
        return _finish(out, notes)
    if agreement:
        # never above FP32's own agreement (100 in the app's reports; a fraction in others)
        floor = min(defaults.MIN_AGREEMENT.get(task, reference - max_drop), reference)
        target = f"with {metric} >= {floor:g}"
    else:
        floor = reference - max_drop
        target = f"within {max_drop:g} {metric} of fp32"
    meeting = [t for t in usable if (s := _score(t[2], metric)) is not None and s >= floor]
    if not meeting:
        out.lines.append(f"{backend}: no variant with a measured latency scores {target}")
        return _finish(out, notes)
    # Timings within SAME_SPEED_BAND of the fastest are a tie on a busy machine: the tie goes
    # to the more precise variant (fp32, then fp16), not to noise.
    fastest = min(t[0] for t in meeting)
    tied = [t for t in meeting if t[0] <= fastest * (1.0 + SAME_SPEED_BAND)]
    ms, name, chosen = min(
        tied, key=lambda t: (PRECISION_RANK.get(t[1], len(PRECISION_RANK)), t[0])
    )
    out.variant = name
    score = _score(chosen, metric) or 0.0
    if name == "fp32" and len(usable) == 1:  # nothing else was judged: say so, not "slower"
        head = f"{backend}: use fp32: it is the only variant here with a latency and a {metric}"
    elif name == "fp32":
        head = (
            f"{backend}: use fp32: no other variant is clearly faster (by more than "
            f"{SAME_SPEED_BAND:.0%}) and {target}"
        )
    else:
        speed = f", {ms / fp32_ms:.2f}x fp32's latency" if fp32_ms else ""
        head = (
            f"{backend}: use {name}, the fastest {target} ({ms:.3g} ms p50 by "
            f"{latency_of(chosen)[1]}{speed}; {metric} {score:.4g}, {score - reference:+.2f})"
        )
        if agreement:
            ci = interval_of(chosen, metric)
            low = ci[0] if _pair(ci) else None
            what = f"its {metric}'s 95% interval reaches {low:.4g}" if low is not None else ""
        else:
            ci = interval_of(chosen, metric, "diff_ci")
            low = reference + ci[0] if _pair(ci) else None
            what = f"the 95% interval of its difference to fp32 reaches {ci[0] if ci else 0:+.2f}"
        if low is not None and low < floor:
            head += f"; {what}, past the target: evaluate on more images to be sure"
    out.lines.append(head)
    for other_ms, other, _v in sorted(tied, key=lambda t: t[0]):
        if other_ms < ms:  # faster by less than the band: say why it was not chosen
            out.lines.append(
                f"{other} is {other_ms:.3g} ms, within {SAME_SPEED_BAND:.0%} of {name}: a tie "
                f"on a busy machine, which goes to the more precise {name}"
            )
    for other_ms, other, v in sorted(usable, key=lambda t: t[0]):
        if other_ms >= ms or other in {t[1] for t in meeting}:
            continue  # slower, or a tie the more precise variant won (said above)
        s = _score(v, metric)
        lost = f"{metric} {s:.4g}, {s - reference:+.2f}" if s is not None else f"no {metric}"
        out.lines.append(f"{other} is faster ({other_ms:.3g} ms) but misses the target ({lost})")
    out.lines.extend(_slow_int8(usable, fp32_ms, backend, name))
    return _finish(out, notes)


def _slow_int8(
    usable: list[tuple], fp32_ms: float | None, backend: str, chosen: str = ""
) -> list[str]:
    """The truth for every INT8 variant that is not faster than FP32 on this backend (pointing
    at `chosen`, the recommended variant, where that is not FP32 or itself)."""
    if not fp32_ms:
        return []
    return [
        speed_verdict(ms / fp32_ms, name, "fp32", backend, chosen if chosen != name else "")
        + _timed_by(v)
        for ms, name, v in usable
        if name.startswith("int8") and ms / fp32_ms > 1.0 - SAME_SPEED_BAND
    ]


def _timed_by(variant: dict[str, Any]) -> str:
    """Where a verdict's timing came from, when it is the weaker source: an evaluation times
    one variant after another, so load that comes and goes moves the ratio; `bench` (or
    `quantize`'s check) times them in turns. The same INT8 read 1.28x FP32 by evaluation and
    1.00x by quantize's interleaved check on one 2-core VM."""
    if latency_of(variant)[1] != "evaluation":
        return ""
    return " (timed by the evaluation, one variant after another; `bench` times them in turns)"


def _pair(ci: Any) -> bool:
    return (
        isinstance(ci, (list, tuple))
        and len(ci) == 2
        and all(isinstance(x, (int, float)) for x in ci)
    )


def _finish(out: Recommendation, notes: list[str]) -> Recommendation:
    out.lines.extend(notes)
    return out


def recommend(
    report: dict[str, Any], metric: str | None = None, max_drop: float = defaults.TARGET_DROP
) -> list[Recommendation]:
    """One Recommendation per backend in the report, in the order the backends first appear;
    `metric` defaults to the labelled accuracy metric when there is one (`default_metric`)."""
    variants = [v for v in report.get("variants", []) if isinstance(v, dict)]
    backends = list(dict.fromkeys(str(v.get("backend", "")) for v in variants))
    out = []
    timing_only = report.get("task") == "benchmark"  # a bench.json alone: no accuracy
    for backend in backends:
        rows = [v for v in variants if str(v.get("backend", "")) == backend]
        names = metric_names(rows)
        chosen = "" if timing_only else (metric if metric in names else default_metric(names))
        if not chosen and not timing_only:
            continue
        found = recommend_backend(rows, backend, chosen, max_drop, str(report.get("task", "")))
        if report.get("calibration_overlap") and found.variant not in (None, "fp32"):
            # judged on images INT8 was fitted to: the verdict says so wherever it is shown
            found.lines.append(f"caution: {report['calibration_overlap']}")
        out.append(found)
    return out


def across_backends(found: list[Recommendation]) -> str:
    """Which backend's chosen variant is fastest, when two or more backends chose one (each
    judged against its own backend's FP32); "" otherwise. The user picks a runtime as much as
    a variant: on a 2-core Xeon with AMX, YOLOX-Nano's pick was fp32-prep on ort-cpu and
    int8-ov on openvino-cpu, a few percent apart."""
    picks = []
    for r in found:
        chosen = next((v for v in r.rows if v.get("name") == r.variant), None)
        ms = latency_of(chosen)[0] if chosen is not None else None
        if ms:
            picks.append((ms, str(r.variant), r.backend))
    if len(picks) < 2:
        return ""
    picks.sort()
    ms, name, backend = picks[0]
    rest = ", ".join(f"{n} on {b} {m:.3g} ms" for m, n, b in picks[1:])
    return f"fastest of the backends' choices: {name} on {backend} ({ms:.3g} ms p50; {rest})"


def recommendation_lines(
    report: dict[str, Any], metric: str | None = None, max_drop: float = defaults.TARGET_DROP
) -> list[str]:
    """Every backend's sentences, flat (for printing), and which backend's choice is fastest."""
    found = recommend(report, metric, max_drop)
    lines = [line for r in found for line in r.lines]
    overall = across_backends(found)
    return [*lines, overall] if overall else lines
