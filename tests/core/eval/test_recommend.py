"""Which variant to use (`recommend`): first end to end on ResNet-8 (FP32, FP16 and INT8 really
evaluated on CIFAR photos with labels and benchmarked through the CLI), checked against the
rule read off the saved reports; then the rule's edges on report dicts of evaluate()'s shape
(ties, a CPU fallback, agreement bars, a benchmark alone, intervals past the target)."""

from __future__ import annotations

import json
import shutil

import pytest

from app.cli.main import main
from app.core.eval.recommend import across_backends, recommend, recommendation_lines
from app.core.eval.reports import load_results
from app.core.quant.quantize import quantize
from app.core.timing import SAME_SPEED_BAND
from tests.assets import CIFAR, needs_assets
from tests.workspaces import resnet8_int8_workspace


def row(name, score, ms, *, metric="top1", backend="ort-cpu", **extra):
    return {
        "name": name,
        "backend": backend,
        "provider": "CPUExecutionProvider",
        "metrics": {metric: score},
        "latency_ms": {"p50": ms, "p90": ms, "p99": ms},
        **extra,
    }


def report(*rows, task="classification"):
    return {"task": task, "variants": list(rows)}


def acceptable(rep, metric, drop, backend="ort-cpu"):
    """The answers the rule allows, computed from the report's numbers alone: variants within
    `drop` of fp32, no slower than the fastest of them by more than the tie band."""
    rows = [v for v in rep["variants"] if v["backend"] == backend and not v.get("fallback")]
    ref = next(v for v in rows if v["name"] == "fp32")["metrics"][metric]

    def ms(v):
        return (v.get("bench") or {}).get("p50") or v["latency_ms"]["p50"]

    ok = [v for v in rows if v["metrics"].get(metric, -1e9) >= ref - drop]
    best = min(ms(v) for v in ok)
    return {v["name"] for v in ok if ms(v) <= best * (1 + SAME_SPEED_BAND)}


@pytest.fixture(scope="module")
def resnet8(tmp_path_factory):
    """ResNet-8 with INT8 and FP16, evaluated with labels (5 photos per class) and benched."""
    root = tmp_path_factory.mktemp("rec")
    ws = resnet8_int8_workspace(root)
    quantize(ws, precisions=("fp16",))
    images = root / "eval"
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        (images / cls.name).mkdir(parents=True)
        for image in sorted(cls.glob("*.jpg"))[10:15]:  # not the calibration photos
            shutil.copy(image, images / cls.name / image.name)
    return ws, images


@needs_assets
def test_cli_recommends_what_the_saved_reports_allow(resnet8, capsys):
    ws, images = resnet8
    common = ["--workspace", str(ws.root), "--variants", "fp32,fp16,int8"]
    assert main(["evaluate", *common, "--images", str(images), "--target-drop", "2"]) == 0
    printed = capsys.readouterr().out
    evaluation = json.loads(ws.evaluation_path("ort-cpu").read_text())
    # each row says which graph it measured
    assert {v["name"]: v["sha256"] for v in evaluation["variants"]} == {
        n: ws.variant_sha256(n) for n in ("fp32", "fp16", "int8")
    }
    said = [line for line in printed.splitlines() if line.startswith("ort-cpu: use ")]
    assert len(said) == 1, printed
    chosen = said[0].removeprefix("ort-cpu: use ").split(",")[0].split(":")[0]
    assert chosen in acceptable(evaluation, "top1", 2.0), (said, evaluation["variants"])

    assert main(["bench", *common, "--iterations", "15", "--warmup", "2"]) == 0
    printed = capsys.readouterr().out
    merged = load_results(ws.evaluation_path("ort-cpu"))
    assert all(v.get("bench") for v in merged["variants"])  # same graphs: bench merged in
    said = [line for line in printed.splitlines() if line.startswith("ort-cpu: use ")]
    assert len(said) == 1, printed
    chosen = said[0].removeprefix("ort-cpu: use ").split(",")[0].split(":")[0]
    merged_rows = [dict(v, latency_ms={"p50": v["bench"]["p50"]}) for v in merged["variants"]]
    assert chosen in acceptable(dict(merged, variants=merged_rows), "top1", 1.0), printed
    if chosen != "fp32":
        assert "by bench" in said[0]  # the benchmark's timing, not the evaluation's


@needs_assets
def test_a_rebuilt_variant_is_not_merged_with_the_old_timing(resnet8):
    ws, _ = resnet8
    bench = json.loads(ws.bench_path().read_text())
    for r in bench["results"]:
        if r["variant"] == "int8":
            r["sha256"] = "0" * 64  # as if int8 had been rebuilt since the benchmark
    ws.bench_path().write_text(json.dumps(bench))
    merged = {v["name"]: v for v in load_results(ws.evaluation_path("ort-cpu"))["variants"]}
    assert "bench" not in merged["int8"] and merged["fp32"].get("bench")


def test_a_tie_goes_to_the_more_precise_variant():
    rep = report(row("fp32", 74.0, 10.0), row("fp16", 74.0, 9.8), row("int8", 73.5, 9.7))
    (r,) = recommend(rep)
    assert r.variant == "fp32" and r.metric == "top1"
    assert r.lines[0].startswith("ort-cpu: use fp32: no other variant is clearly faster")
    assert "int8 is not faster than fp32 on ort-cpu here (0.97x" in r.lines[-1]


def test_fp32_alone_is_not_called_the_fastest_of_others():
    """An evaluation of fp32 only (a narrower re-run): nothing else was judged, so the verdict
    must not say the others were not faster."""
    (r,) = recommend(report(row("fp32", 74.0, 10.0)))
    assert r.variant == "fp32"
    assert r.lines[0] == "ort-cpu: use fp32: it is the only variant here with a latency and a top1"


def test_a_verdict_on_calibration_images_repeats_the_caution():
    rep = report(row("fp32", 74.0, 10.0), row("int8", 73.9, 5.0))
    rep["calibration_overlap"] = "16 of 20 evaluation images also calibrated the INT8 variants"
    (r,) = recommend(rep)
    assert r.variant == "int8" and r.lines[-1] == f"caution: {rep['calibration_overlap']}"


def test_fastest_within_the_target_and_what_missed_it():
    rep = report(row("fp32", 74.0, 10.0), row("int8", 73.4, 5.0), row("int8-aggr", 70.0, 3.0))
    (r,) = recommend(rep, max_drop=1.0)
    assert r.variant == "int8"
    assert r.lines[0] == (
        "ort-cpu: use int8, the fastest within 1 top1 of fp32 (5 ms p50 by evaluation, "
        "0.50x fp32's latency; top1 73.4, -0.60)"
    )
    assert r.lines[1] == "int8-aggr is faster (3 ms) but misses the target (top1 70, -4.00)"
    (strict,) = recommend(rep, max_drop=0.5)
    assert strict.variant == "fp32"
    # the accuracy asked for decides: every score counts when the target is loose
    assert recommend(rep, max_drop=10.0)[0].variant == "int8-aggr"


def test_a_slow_int8_points_at_the_recommended_variant_not_fp32():
    """fp16 recommended (clearly faster), int8 slower than fp32: the int8 line said "use fp32"
    right under "use fp16" (seen on the tutorial YOLOX's upcast copy, ort-cpu)."""
    rep = report(row("fp32", 35.59, 22.3), row("fp16", 35.59, 20.4), row("int8", 34.53, 24.6))
    lines = recommendation_lines(rep, max_drop=1.5)
    assert lines[0].startswith("ort-cpu: use fp16, the fastest")
    assert lines[-1].startswith("int8 is SLOWER than fp32 on ort-cpu here (1.10x the latency)")
    assert "use fp16, recommended above" in lines[-1] and "use fp32" not in lines[-1]


def test_slower_int8_is_called_slower():
    rep = report(row("fp32", 35.9, 27.0), row("int8", 35.1, 31.0), task="detection")
    rep["variants"] = [dict(v, metrics={"mAP50_95": v["metrics"]["top1"]}) for v in rep["variants"]]
    lines = recommendation_lines(rep)
    assert lines[0].startswith("ort-cpu: use fp32")
    assert lines[1] == (
        "int8 is SLOWER than fp32 on ort-cpu here (1.15x the latency): use fp32 (timed by the "
        "evaluation, one variant after another; `bench` times them in turns)"
    )
    # with a benchmark's timings merged in, the verdict rests on them and says nothing more
    for v, bench_ms in zip(rep["variants"], (27.0, 31.0)):
        v["bench"] = {"p50": bench_ms}
    assert recommendation_lines(rep)[1].endswith("(1.15x the latency): use fp32")


def test_a_cpu_fallback_is_never_recommended():
    fell = "CUDA unavailable (libcudnn missing); ran on CPUExecutionProvider"
    rep = report(
        row("fp32", 74.0, 10.0, backend="ort-cuda"),
        row("int8", 74.0, 2.0, backend="ort-cuda", fallback=fell),
    )
    (r,) = recommend(rep)
    assert r.variant == "fp32"
    assert f"int8 is not considered: it did not run as asked on ort-cuda ({fell})" in r.lines


def test_without_labels_the_agreement_bars_apply():
    rep = report(
        row("fp32", 100.0, 10.0, metric="top1_agreement"),
        row("int8", 97.0, 5.0, metric="top1_agreement"),
        row("int8-mp", 98.5, 6.0, metric="top1_agreement"),
    )
    (r,) = recommend(rep)
    assert r.variant == "int8-mp"  # classification's bar is 98, int8's 97 misses it
    assert "with top1_agreement >= 98" in r.lines[0]
    det = report(
        row("fp32", 100.0, 30.0, metric="agreement_mAP50_95"),
        row("int8", 93.0, 20.0, metric="agreement_mAP50_95"),
        task="detection",
    )
    assert recommend(det)[0].variant == "int8"  # detection's bar is 92


def test_an_interval_past_the_target_is_said():
    chosen = row("int8", 73.6, 5.0, diff_ci={"top1": [-2.4, 1.0]})
    (r,) = recommend(report(row("fp32", 74.0, 10.0), chosen))
    assert r.variant == "int8"
    assert "the 95% interval of its difference to fp32 reaches -2.40, past the target" in r.lines[0]
    sure = row("int8", 73.6, 5.0, diff_ci={"top1": [-0.9, 0.2]})
    assert "past the target" not in recommend(report(row("fp32", 74.0, 10.0), sure))[0].lines[0]


def test_a_benchmark_alone_names_the_fastest_without_judging_accuracy():
    rep = {
        "task": "benchmark",
        "variants": [
            dict(row("fp32", 0, 10.0), metrics={"throughput_fps": 100.0}),
            dict(row("int8", 0, 12.0), metrics={"throughput_fps": 83.0}),
        ],
    }
    (r,) = recommend(rep)
    assert r.variant is None
    assert r.lines[0] == (
        "ort-cpu: fastest is fp32 (10 ms p50); accuracy is not measured here; evaluate the "
        "variants to judge it"
    )
    assert r.lines[1].startswith("int8 is SLOWER than fp32 on ort-cpu here (1.20x")


def test_a_benchmark_alone_recommends_fp32_prep_when_it_is_clearly_faster():
    """fp32-prep computes FP32's outputs, so its speed alone can choose it; INT8's verdict points
    at it instead of at the slower fp32. Within the tie band nothing is chosen."""

    def bench(prep_ms: float) -> dict:
        return {
            "task": "benchmark",
            "variants": [
                dict(row(name, 0, ms), metrics={"throughput_fps": 1000 / ms})
                for name, ms in (("fp32", 10.0), ("fp32-prep", prep_ms), ("int8", 12.0))
            ],
        }

    (r,) = recommend(bench(8.5))
    assert r.variant == "fp32-prep"
    assert r.lines[0].startswith("ort-cpu: use fp32-prep, the fastest (8.5 ms p50, 0.85x")
    assert "evaluate them to judge it" in r.lines[0]
    assert r.lines[1].startswith("int8 is SLOWER than fp32 on ort-cpu here (1.20x")
    assert "latency): use fp32-prep, recommended above" in r.lines[1]
    (r,) = recommend(bench(9.8))  # 2% faster: a tie on a busy machine
    assert r.variant is None and r.lines[0].startswith("ort-cpu: fastest is fp32-prep (9.8 ms")
    assert "latency): use fp32 (" in r.lines[1]


def test_no_fp32_row_cannot_be_judged():
    (r,) = recommend(report(row("int8", 73.0, 5.0), row("fp16", 74.0, 9.0)))
    assert r.variant is None
    assert "with no fp32 row its top1 cannot be judged" in r.lines[0]


def test_backends_are_judged_apart():
    rep = report(
        row("fp32", 74.0, 10.0),
        row("int8", 73.8, 5.0),
        row("fp32", 74.0, 2.0, backend="ort-cuda"),
        row("int8", 73.8, 2.5, backend="ort-cuda"),
    )
    cpu, cuda = recommend(rep)
    assert (cpu.backend, cpu.variant) == ("ort-cpu", "int8")
    assert (cuda.backend, cuda.variant) == ("ort-cuda", "fp32")
    assert "int8 is SLOWER than fp32 on ort-cuda here (1.25x the latency)" in cuda.lines[-1]
    # and which backend's choice is the fastest, once, after every backend's own lines
    lines = recommendation_lines(rep)
    assert lines[-1] == (
        "fastest of the backends' choices: fp32 on ort-cuda (2 ms p50; int8 on ort-cpu 5 ms)"
    )
    assert sum(line.startswith("fastest of the backends'") for line in lines) == 1
    assert across_backends([cpu]) == ""  # one backend: nothing to compare


def test_a_benchmark_row_that_fell_back_is_not_named_fastest():
    from app.core.eval.reports import bench_as_report

    def result(variant, ms, fallback=""):
        lat = {"p50": ms, "p90": ms, "p99": ms}
        return {"variant": variant, "backend": "ort-cuda", "latency_ms": lat, "fallback": fallback}

    fell = "CUDAExecutionProvider did not load; ran on CPUExecutionProvider"
    bench = {"results": [result("fp32", 3.0), result("int8", 1.0, fell)]}
    (r,) = recommend(bench_as_report(bench))
    assert r.lines[0].startswith("ort-cuda: fastest is fp32 (3 ms p50)")
    assert f"int8 is not considered: it did not run as asked on ort-cuda ({fell})" in r.lines


def test_a_benchmark_row_that_ran_with_a_caveat_is_judged_and_its_caveat_said():
    # ONNX Runtime left the CUDA graph out (a Q/DQ node ran on the CPU) but the variant ran on
    # the CUDA provider it was asked for: its latency is real, so it competes
    from app.core.eval.reports import bench_as_report

    def result(variant, ms, caveat=""):
        lat = {"p50": ms, "p90": ms, "p99": ms}
        return {"variant": variant, "backend": "ort-cuda", "latency_ms": lat, "fallback": "",
                "caveat": caveat}  # fmt: skip

    caveat = "CUDA graph not used: not every node runs on CUDA"
    bench = {"results": [result("fp32", 3.0), result("int8", 1.0, caveat)]}
    (r,) = recommend(bench_as_report(bench))
    assert r.lines[0].startswith("ort-cuda: fastest is int8 (1 ms p50)")
    assert f"int8 ran on ort-cuda with a caveat: {caveat}" in r.lines
    assert not any("not considered" in line for line in r.lines)
