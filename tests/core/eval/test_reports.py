"""Results reports on what `evaluate` and `bench` really write for ResNet-8 (FP32 and FP16 on a
CIFAR-10 sample): where the workspace keeps them, the benchmark merged into the evaluation,
the table and scatter made from them, and files the capped reader refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.cli.main import main
from app.core.errors import UserError
from app.core.eval.recommend import recommendation_lines
from app.core.eval.reports import (
    all_backends,
    caption,
    cell_text,
    flatten,
    latency_axis,
    load_results,
    metric_columns,
    read_report,
    same_model,
    scatter_points,
)
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.quantize import quantize
from tests.assets import CIFAR, RESNET8, needs_assets

pytestmark = needs_assets


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    """A ResNet-8 workspace with FP16 built, evaluated (3 images per class) and benchmarked."""
    images = tmp_path_factory.mktemp("cifar-eval")
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        (images / cls.name).mkdir()
        for image in sorted(cls.glob("*.jpg"))[:3]:
            shutil.copy(image, images / cls.name / image.name)
    ws = Workspace.for_model(inspect_model(RESNET8), tmp_path_factory.mktemp("ws"))
    quantize(ws, precisions=("fp16",))
    common = ["--workspace", str(ws.root), "--variants", "fp32,fp16"]
    assert main(["evaluate", *common, "--images", str(images)]) == 0
    assert main(["bench", *common, "--iterations", "5", "--warmup", "1"]) == 0
    return ws


def test_workspace_names_the_files_the_commands_write(ws):
    evaluation, bench = ws.evaluation_path("ort-cpu"), ws.bench_path()
    assert evaluation.is_file() and bench.is_file()
    assert ws.result_files() == [evaluation, bench]
    assert evaluation.parent == ws.results_dir == bench.parent
    assert Workspace(ws.root / "nowhere").result_files() == []


def test_evaluation_with_its_benchmark_as_a_table(ws):
    evaluation = json.loads(ws.evaluation_path("ort-cpu").read_text())
    bench = json.loads(ws.bench_path().read_text())
    assert same_model(evaluation, bench, ws.results_dir)
    report = load_results(ws.evaluation_path("ort-cpu"))
    columns, rows = flatten(report)
    assert columns[:3] == ["variant", "backend", "provider"]
    assert columns[-2:] == ["bench p50 (ms)", "bench fps"]
    assert [r[:3] for r in rows] == [["fp32", "ort-cpu", "CPU"], ["fp16", "ort-cpu", "CPU"]]
    by_variant = {r["variant"]: r for r in bench["results"]}
    for row in rows:
        measured = by_variant[row[0]]
        assert row[-2] == measured["latency_ms"]["p50"]
        assert row[-1] == measured["throughput_fps"]
    metrics = metric_columns(columns)
    assert "top1" in metrics and not any(m.startswith(("latency", "bench")) for m in metrics)
    top1 = {r[0]: r[columns.index("top1")] for r in rows}
    assert 30.0 < top1["fp32"] <= 100.0  # percent; ResNet-8 scores 73 on this sample
    xs, ys, names = scatter_points(report, "top1")
    assert names == ["fp32 · ort-cpu", "fp16 · ort-cpu"]
    assert ys == [top1["fp32"], top1["fp16"]] and all(x > 0 for x in xs)
    # every row benched: the scatter plots the benchmark's p50, as the verdict under it does
    assert latency_axis(report) == "bench p50 (ms)"
    assert xs == [by_variant[n]["latency_ms"]["p50"] for n in ("fp32", "fp16")]
    evaluation_only = json.loads(ws.evaluation_path("ort-cpu").read_text())
    assert latency_axis(evaluation_only) == "latency p50 (ms)"
    xs, _, _ = scatter_points(evaluation_only, "top1")
    assert xs == [v["latency_ms"]["p50"] for v in evaluation_only["variants"]]
    assert caption(report) == "classification on 30 images (labelled): 2 rows"


def test_benchmark_alone_and_another_models_benchmark(ws, tmp_path):
    report = load_results(ws.bench_path())
    assert report["task"] == "benchmark"
    columns, rows = flatten(report)
    assert metric_columns(columns) == ["throughput_fps"]
    assert {r[0] for r in rows} == {"fp32", "fp16"}
    # a benchmark of another model beside a copy of the evaluation is not merged into it
    shutil.copy(ws.evaluation_path("ort-cpu"), tmp_path / "evaluate.json")
    other = json.loads(ws.bench_path().read_text())
    other["model_sha256"] = "0" * 64
    (tmp_path / "bench.json").write_text(json.dumps(other))
    columns, _ = flatten(load_results(tmp_path / "evaluate.json"))
    assert "bench fps" not in columns
    # a damaged benchmark beside it: the evaluation is still shown
    (tmp_path / "bench.json").write_text("{damaged")
    assert flatten(load_results(tmp_path / "evaluate.json"))[1]


@pytest.mark.parametrize(
    "content, reason",
    [
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('["a list"]', "expected a JSON dict"),
        ("{not json", "not valid JSON"),
        (None, "larger than"),
    ],
)
def test_unreadable_results_file_is_a_user_error(tmp_path, content, reason):
    path = tmp_path / "evaluate-ort-cpu.json"
    if content is None:  # over the reader's cap: refused before it is parsed
        path.write_text('{"pad": "' + "x" * (5 * 1024 * 1024) + '"}')
    else:
        path.write_text(content)
    with pytest.raises(UserError) as info:
        read_report(path)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_cells():
    assert cell_text(None) == "–"
    assert cell_text(0.123456) == "0.1235"
    assert cell_text(12) == "12"


def test_missing_file_names_it(tmp_path: Path):
    with pytest.raises(UserError, match=r"missing\.json"):
        load_results(tmp_path / "missing.json")


def test_two_backends_evaluations_of_the_same_images_read_as_one_table(ws, tmp_path, capsys):
    """Evaluated on ort-cpu and on openvino-cpu (real runs), the workspace's two reports read as
    one table whose verdicts judge each backend apart and then name the faster choice; another
    image set, or a benchmark, is not read into it. (Last in this file: it adds a report.)"""
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install openvino)")
    images = json.loads(ws.evaluation_path("ort-cpu").read_text())["images_dir"]
    common = ["--workspace", str(ws.root), "--variants", "fp32,fp16", "--images", images]
    capsys.readouterr()
    assert main(["evaluate", *common, "--backend", "openvino-cpu"]) == 0
    # evaluate itself ends with whose choice is fastest, the ort-cpu evaluation read beside it
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("fastest of the backends' choices: ")
    assert " on ort-cpu" in printed[-1] and " on openvino-cpu" in printed[-1]
    combined = all_backends(ws.result_files())
    assert combined is not None
    assert [(v["name"], v["backend"]) for v in combined["variants"]] in (
        [(n, b) for b in backends for n in ("fp32", "fp16")]
        for backends in (("openvino-cpu", "ort-cpu"), ("ort-cpu", "openvino-cpu"))
    )
    assert caption(combined) == "classification on 30 images (labelled): 4 rows"
    lines = recommendation_lines(combined)
    assert sum(line.startswith(("ort-cpu: ", "openvino-cpu: ")) for line in lines) == 2
    assert lines[-1].startswith("fastest of the backends' choices: ")
    other = json.loads(ws.evaluation_path("openvino-cpu").read_text())
    (tmp_path / "evaluate-openvino-cpu.json").write_text(json.dumps(dict(other, images=29)))
    assert (
        all_backends([ws.evaluation_path("ort-cpu"), tmp_path / "evaluate-openvino-cpu.json"])
        is None
    )
    assert all_backends([ws.evaluation_path("ort-cpu"), ws.bench_path()]) is None
