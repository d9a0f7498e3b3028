"""`bench` on a real workspace: every recorded variant by default, timed in turns, a variant that
cannot run reported and left out while the others are still timed, a real photo as the feed."""

from __future__ import annotations

import json

import onnx

from app.cli.main import main
from tests.assets import needs_assets
from tests.workspaces import resnet8_int8_workspace

pytestmark = needs_assets


def test_bench_times_every_variant_and_skips_one_that_cannot_run(tmp_path, capsys):
    ws = resnet8_int8_workspace(tmp_path)
    # a recorded variant ONNX Runtime cannot load (an op nobody implements): intact on disk,
    # so only opening it fails
    model = onnx.load(str(ws.variant_path("int8")))
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save(model, str(ws.variant_path("int8-broken")))
    ws.record_variant("int8-broken", {"precision": "int8", "target": "ort-cpu"})
    capsys.readouterr()
    out_json = tmp_path / "bench.json"
    args = ["bench", "--workspace", str(ws.root), "--iterations", "10", "--warmup", "2"]
    assert main([*args, "--json", str(out_json)]) == 0
    out, err = capsys.readouterr()
    table = [line.split()[0] for line in out.splitlines() if "ort-cpu" in line and "CPU" in line]
    assert table == ["fp32", "int8"]  # no --variants: fp32 and what the workspace has
    assert "skipping int8-broken on ort-cpu: " in err and "ONNX Runtime cannot load it" in err
    report = json.loads(out_json.read_text())
    skipped = [r for r in report["results"] if "skipped" in r]
    assert [(r["variant"], r["backend"]) for r in skipped] == [("int8-broken", "ort-cpu")]
    timed = [r for r in report["results"] if "latency_ms" in r]
    assert [r["variant"] for r in timed] == ["fp32", "int8"]
    assert all(r["latency_ms"]["p50"] > 0 for r in timed)
    # fed one of the calibration photos, not random pixels; the verdict rests on bench's turns
    assert report["input"].endswith(".jpg") and "turns" in report["timing"]
    assert "timed by the evaluation" not in out
    # a typo: nothing timed, said in one line, and the benchmark just made is kept
    before = ws.bench_path().read_text()
    assert main([*args, "--variants", "int8-typo"]) == 2
    out, err = capsys.readouterr()
    assert "variant 'int8-typo' is not in" in err and "check the name" in err
    assert "nothing was timed" in err and ws.bench_path().read_text() == before
