"""Results panel: evaluate()-shaped dicts as a sortable table and an accuracy/latency scatter."""

from __future__ import annotations

import html
import json
import os
import time

from PySide6.QtCore import Qt

from app.gui.panels.results import ResultsPanel

REPORT = {
    "task": "detection",
    "variants": [
        {
            "name": "fp32",
            "backend": "ort-cpu",
            "provider": "CPUExecutionProvider",
            "metrics": {"map50": 0.41, "agreement": 1.0},
            "latency_ms": {"p50": 42.0, "p90": 45.0, "p99": 50.0},
        },
        {
            "name": "int8",
            "backend": "ort-cpu",
            "provider": "CPUExecutionProvider",
            "metrics": {"map50": 0.39, "agreement": 0.93},
            "latency_ms": {"p50": 21.0, "p90": 23.0, "p99": 30.0},
        },
    ],
}


def test_table_sorts_and_scatter_has_points(qtbot, tmp_path, state, make_panel):
    panel = make_panel(ResultsPanel, state)
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(REPORT))
    assert panel.load_file(path)
    assert panel.proxy.rowCount() == 2
    col = [
        panel.model.headerData(c, Qt.Orientation.Horizontal)
        for c in range(panel.model.columnCount())
    ].index("latency p50 (ms)")
    panel.table.sortByColumn(col, Qt.SortOrder.AscendingOrder)
    assert panel.proxy.index(0, 0).data() == "int8"
    assert panel.metric_box.currentText() == "map50"
    assert len(panel.scatter.data) == 2


def test_advice_names_the_fastest_backend_choice_last(qtbot, tmp_path, state, make_panel):
    """Two backends each choose a variant; the verdict ends with which of the two is faster."""
    gpu = [dict(v, backend="ort-cuda", latency_ms={"p50": ms}) for v, ms in
           zip(REPORT["variants"], (3.0, 4.0), strict=True)]  # fmt: skip
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(dict(REPORT, variants=REPORT["variants"] + gpu)))
    panel = make_panel(ResultsPanel, state)
    panel.advice.target_drop.setValue(1.0)
    assert panel.load_file(path)
    lines = panel.advice.lines
    assert lines[0].startswith("ort-cpu: use int8") and any(
        line.startswith("ort-cuda: use fp32") for line in lines
    )
    assert lines[-1] == (
        "fastest of the backends' choices: fp32 on ort-cuda (3 ms p50; int8 on ort-cpu 21 ms)"
    )
    assert panel.advice.advice.text().endswith(f"<b>{html.escape(lines[-1])}</b>")


def test_two_backends_evaluations_show_as_one_table_first(qtbot, int8_state, make_panel):
    """The workspace's evaluations on two backends, of the same images, are offered first as
    one table; the verdicts end with the faster backend's choice."""
    results = int8_state.workspace().root / "results"
    results.mkdir(exist_ok=True)
    for stale in results.glob("*.json"):
        stale.unlink()
    for backend, scale in (("ort-cpu", 1.0), ("openvino-cpu", 0.5)):
        rows = [dict(v, backend=backend, latency_ms={"p50": v["latency_ms"]["p50"] * scale})
                for v in REPORT["variants"]]  # fmt: skip
        (results / f"evaluate-{backend}.json").write_text(json.dumps(dict(REPORT, variants=rows)))
    panel = make_panel(ResultsPanel, int8_state)
    assert panel.reports.itemText(0).startswith("all backends")
    assert panel.reports.count() == 3 and panel.proxy.rowCount() == 4
    assert panel.advice.lines[-1] == (
        "fastest of the backends' choices: int8 on openvino-cpu (10.5 ms p50; "
        "int8 on ort-cpu 21 ms)"
    )
    panel.reports.setCurrentIndex(1)  # one backend's own file: its two rows, no such line
    assert panel.proxy.rowCount() == 2
    assert not panel.advice.lines[-1].startswith("fastest of the backends'")
    # an evaluation just made on one backend shows with the other's of the same images
    just_made = results / "evaluate-ort-cpu.json"
    os.utime(just_made, (time.time() + 5, time.time() + 5))  # the newest, as a new one is
    panel._evaluated(just_made)
    assert panel.reports.currentIndex() == 0 and panel.proxy.rowCount() == 4


def test_advice_follows_the_target_drop(qtbot, tmp_path, state, make_panel):
    panel = make_panel(ResultsPanel, state)
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(REPORT))
    panel.advice.target_drop.setValue(1.0)
    assert panel.load_file(path)
    assert panel.advice.lines[0].startswith("ort-cpu: use int8, the fastest within 1 map50 of fp32")
    panel.advice.target_drop.setValue(0.0)  # the user asks for fp32's accuracy exactly
    lines = panel.advice.lines
    assert lines[0].startswith("ort-cpu: use fp32")
    assert lines[1] == "int8 is faster (21 ms) but misses the target (map50 0.39, -0.02)"
    assert panel.setting("target_drop") == 0.0  # kept for the next session
    panel.metric_box.setCurrentText("agreement")  # judged on the axis shown
    assert panel.advice.lines[0].startswith("ort-cpu: use fp32: no other variant is clearly")
    assert "with agreement >= 1" in panel.advice.lines[0]  # this file's scale: fp32 scores 1


def test_bad_file_inline(qtbot, tmp_path, state, make_panel):
    panel = make_panel(ResultsPanel, state)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert not panel.load_file(bad)
    assert "bad.json" in panel.messages.text("load")
    # read through the capped reader: absurd nesting is a message, not a RecursionError
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    assert not panel.load_file(deep)
    assert "deep.json" in panel.messages.text("load")
    assert "nested too deeply" in panel.messages.text("load")


def small_eval_folder(tmp_path, paths, n=6):
    """A few labelled COCO images (images/ + labels/ as YOLO txt), for a quick evaluation."""
    import shutil

    src = paths["images"] / "images"
    images, labels = tmp_path / "val" / "images", tmp_path / "val" / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for image in sorted(src.glob("*.jpg"))[:n]:
        shutil.copy(image, images / image.name)
        label = src.parent / "labels" / f"{image.stem}.txt"
        if label.exists():
            shutil.copy(label, labels / label.name)
    return images


def test_workspace_results_load_and_evaluate_action(qtbot, tmp_path, int8_state, paths, make_panel):
    ws = int8_state.workspace()
    (ws.root / "results").mkdir(exist_ok=True)
    for stale in (ws.root / "results").glob("*.json"):
        stale.unlink()
    (ws.root / "results" / "evaluate-ort-cpu.json").write_text(json.dumps(REPORT))
    bench = {
        "results": [
            {
                "variant": "int8",
                "backend": "ort-cpu",
                "provider": "CPUExecutionProvider",
                "latency_ms": {"p50": 12.5, "p90": 13.0, "p99": 15.0},
                "throughput_fps": 80.0,
            }
        ]
    }
    (ws.root / "results" / "bench.json").write_text(json.dumps(bench))
    panel = make_panel(ResultsPanel, int8_state)
    # Loaded on open: the evaluation, with the benchmark merged into its int8 row.
    assert [panel.reports.itemText(i) for i in range(panel.reports.count())] == [
        "evaluate-ort-cpu.json",
        "bench.json",
    ]
    assert panel.proxy.rowCount() == 2
    headers = [
        panel.model.headerData(c, Qt.Orientation.Horizontal)
        for c in range(panel.model.columnCount())
    ]
    assert "bench fps" in headers
    panel.reports.setCurrentIndex(1)
    assert panel.metric_box.currentText() == "throughput_fps"
    # a bench.json of another model beside an evaluation file is not merged into it
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "evaluate.json").write_text(json.dumps(dict(REPORT, model_sha256="aaa")))
    (loose / "bench.json").write_text(json.dumps(dict(bench, model_sha256="bbb")))
    assert panel.load_file(loose / "evaluate.json", remember=False)
    headers = [
        panel.model.headerData(c, Qt.Orientation.Horizontal)
        for c in range(panel.model.columnCount())
    ]
    assert "bench fps" not in headers

    panel.images.setText(str(small_eval_folder(tmp_path, paths)))
    for name, box in panel.variant_checks.items():
        box.setChecked(name in ("fp32", "int8"))
    assert set(panel.variant_checks) >= {"fp32", "int8"}
    # Cancel one run, then let one finish; the finished one is saved and shown.
    assert panel.evaluate()
    job = panel.job
    with qtbot.waitSignal(job.signals.done, timeout=60000):
        job.cancel()
    assert panel.eval_btn.isEnabled() and panel.job is None
    assert panel.evaluate()
    qtbot.waitUntil(lambda: panel.job is None, timeout=120000)
    assert not panel.messages.has("job"), panel.messages.text("job")
    saved = json.loads((ws.root / "results" / "evaluate-ort-cpu.json").read_text())
    assert [v["name"] for v in saved["variants"]] == ["fp32", "int8"]
    assert panel.reports.currentText() == "evaluate-ort-cpu.json"
    assert panel.proxy.rowCount() == 2
    assert "mAP50_95" in [panel.metric_box.itemText(i) for i in range(panel.metric_box.count())]
    assert len(panel.scatter.data) == 2
    assert "labelled" in panel.caption.text()
    advice = panel.advice.lines[0]
    assert advice.startswith("ort-cpu: use "), panel.advice.lines
    assert "<b>" in panel.advice.advice.text()  # the verdict stands out
    chosen = advice.removeprefix("ort-cpu: use ").split(",")[0].split(":")[0]
    metric = panel.metric_box.currentText()
    scores = {v["name"]: v["metrics"][metric] for v in saved["variants"]}
    assert scores[chosen] >= scores["fp32"] - panel.advice.target_drop.value()


def test_evaluate_without_images_is_inline(qtbot, state, make_panel):
    panel = make_panel(ResultsPanel, state)
    panel.images.setText("")
    assert not panel.evaluate()
    assert "folder of evaluation images" in panel.messages.text("evaluate")


def test_first_ticks_are_the_declared_variants(
    qtbot, tmp_path, int8_workspace, yolox_spec, make_panel
):
    """Evaluate starts with the variants `int8-studio evaluate` scores by default; other built
    variants are listed unticked (all were ticked)."""
    import copy
    import shutil

    from app.core import defaults
    from app.gui.state import AppState

    root = tmp_path / "ws"
    shutil.copytree(int8_workspace, root)
    st = AppState(workspace_root=root)
    st.set_spec(copy.deepcopy(yolox_spec))
    ws = st.workspace()
    shutil.copy(ws.variant_path("int8"), ws.variant_path("int8-copy"))
    ws.record_variant("int8-copy", {"precision": "int8"})
    panel = make_panel(ResultsPanel, st)
    assert set(panel.variant_checks) == {"fp32", "int8", "int8-stem", "int8-copy"}
    ticked = {n for n, box in panel.variant_checks.items() if box.isChecked()}
    assert ticked == {"fp32", "int8"} == set(panel.variant_checks) & set(defaults.VARIANTS)
