"""Per-layer INT8 analysis and the mixed-precision search on real models and images."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnxruntime.quantization.calibrate import TensorData, load_tensors_data, save_tensors_data

from app.backends.factory import make_runner
from app.cli.main import main
from app.core.eval.evaluate import Scorer
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.precision.debug import analyse_layers
from app.core.quant.calibration import calibrate
from app.core.quant.graph_rules import compute_blocks, name_nodes
from app.core.quant.quantize import make_int8
from tests.conftest import IMAGES, RESNET8, needs_assets

pytestmark = needs_assets


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """ResNet-8 calibrated (MinMax) on 100 CIFAR images, evaluated on 200 others."""
    root = tmp_path_factory.mktemp("r8")
    cal, val = root / "cal", root / "val"
    for cls in sorted((IMAGES / "cifar10-test500").iterdir()):
        files = sorted(cls.glob("*.jpg"))
        for dest, chunk in ((cal, files[:10]), (val, files[10:30])):
            (dest / cls.name).mkdir(parents=True)
            for f in chunk:
                shutil.copy(f, dest / cls.name / f.name)
    ws = Workspace.for_model(inspect_model(RESNET8), root / "ws")
    result = calibrate(ws, cal, method="minmax")
    return ws, result.folder, val


def _miscalibrate(folder, tensor, dest):
    """A copy of a calibration whose range for `tensor` is 50x too narrow."""
    shutil.copytree(folder, dest)
    data = load_tensors_data(dest / "ranges.json")
    lo, hi = data.data[tensor].range_value
    data.data[tensor] = TensorData(
        lowest=np.asarray(lo, np.float32) / 50, highest=np.asarray(hi, np.float32) / 50
    )
    save_tensors_data(data, dest / "ranges.json")
    return dest


def _victim(ws):
    """The input activation of the fourth compute block, a mid-network tensor."""
    model = name_nodes(onnx.load(ws.spec().path))
    nodes = {n.name: n for n in model.graph.node}
    block = compute_blocks(model)[3]
    return nodes[block[0]].input[0]


def test_analysis_reports_local_and_accumulated_error_and_ranges(resnet):
    ws, folder, _ = resnet
    report = analyse_layers(ws, calibration=folder, count=4)
    assert report["images"] == 4 and report["blocks"] and report["tensors"]
    t = report["tensors"][0]
    for key in (
        "local_sqnr_db",
        "accumulated_sqnr_db",
        "min",
        "max",
        "p9999_abs",
        "channel_spread",
    ):
        assert isinstance(t[key], float), key
    assert len(t["hist"]) == 128 and t["clip"][0] < t["clip"][1]
    scores = [b["output_sqnr_db"] for b in report["blocks"]]
    assert scores == sorted(scores)  # worst first


def test_a_deliberately_miscalibrated_layer_is_ranked_first(resnet, tmp_path):
    ws, folder, _ = resnet
    victim = _victim(ws)
    bad = _miscalibrate(folder, victim, tmp_path / "bad")
    report = analyse_layers(ws, calibration=bad, count=4)
    assert victim in report["blocks"][0]["tensors"], report["blocks"][0]
    stats = next(t for t in report["tensors"] if t["name"] == victim)
    assert stats["clip"][1] < stats["max"] / 10  # the table shows the clip cutting the values
    healthy = analyse_layers(ws, calibration=folder, count=4)
    assert victim not in healthy["blocks"][0]["tensors"]


def test_keeping_the_reported_worst_block_float_improves_accuracy(resnet, tmp_path):
    ws, folder, val = resnet
    bad = _miscalibrate(folder, _victim(ws), tmp_path / "bad")
    worst = analyse_layers(ws, calibration=bad, count=4)["blocks"][0]["nodes"]
    scorer = Scorer(ws, val, runner_factory=make_runner)
    spec = ws.spec()
    scores = {}
    for label, keep in (("all", []), ("fixed", worst)):
        path = tmp_path / f"{label}.onnx"
        make_int8(spec.path, bad / "ranges.json", path, "ort-cpu", keep)
        scores[label] = scorer.score(path)[0]["top1"]
    assert scores["fixed"] >= scores["all"] + 2.0, scores


def test_debug_precision_command_writes_a_usable_variant(resnet, tmp_path, capsys):
    ws, _, val = resnet
    out = tmp_path / "dp.json"
    assert (
        main(
            [
                "debug-precision",
                "--workspace",
                str(ws.root),
                "--images",
                str(val),
                "--target-drop",
                "0.5",
                "--analysis-images",
                "4",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    import json

    report = json.loads(out.read_text())
    assert report["variant"] == "int8-mp" and isinstance(report["layers_kept"], int)
    # the table shows the column it is sorted by (worst first)
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("block"))
    assert "output SQNR" in lines[header]
    shown = [float(line.split()[2]) for line in lines[header + 2 : header + 6]]
    assert shown == sorted(shown), lines[header : header + 6]
    assert report["trials"] and all("compute_ops_float" in t for t in report["trials"])
    assert ws.valid_variant("int8-mp")
    # a search for another layout gets that layout's name and leaves int8-mp alone
    before = ws.variant_meta("int8-mp")
    args = ["--workspace", str(ws.root), "--images", str(val), "--analysis-images", "4"]
    assert main(["debug-precision", *args, "--target", "tensorrt", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["variant"] == "int8-mp-trt"
    assert ws.valid_variant("int8-mp-trt") and ws.variant_meta("int8-mp") == before
    assert (
        main(
            [
                "evaluate",
                "--workspace",
                str(ws.root),
                "--images",
                str(val),
                "--variants",
                "fp32,int8-mp",
            ]
        )
        == 0
    )
