"""The Results table shows each metric with its bootstrap interval and, on hover, the paired
difference to fp32, from a real `evaluate` of ResNet-8 FP32 and INT8 on 500 CIFAR-10 photos."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from app.backends.factory import make_runner
from app.core.eval.evaluate import evaluate
from app.gui.panels.results import ResultsPanel
from tests.assets import CIFAR, needs_assets
from tests.workspaces import resnet8_int8_workspace

pytestmark = needs_assets


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("r8gui")
    ws = resnet8_int8_workspace(root)
    report = evaluate(ws, CIFAR, variants=("fp32", "int8"), runner_factory=make_runner)
    path = root / "evaluate.json"
    path.write_text(json.dumps(report))
    return path


def test_cells_show_intervals_and_the_difference_to_fp32(qtbot, state, make_panel, report_path):
    report = json.loads(report_path.read_text())
    panel = make_panel(ResultsPanel, state)
    assert panel.load_file(report_path)
    header = [
        panel.model.headerData(c, Qt.Orientation.Horizontal)
        for c in range(panel.model.columnCount())
    ]
    top1 = header.index("top1")
    for row, variant in enumerate(report["variants"]):
        lo, hi = variant["metrics_ci"]["top1"]
        text = panel.model.item(row, top1).text()
        assert text == f"{variant['metrics']['top1']:.4g} [{lo:.4g}, {hi:.4g}]"
    fp32_tip = panel.model.item(0, top1).toolTip()
    int8_tip = panel.model.item(1, top1).toolTip()
    lo, hi = report["variants"][1]["diff_ci"]["top1"]
    assert fp32_tip == "" and int8_tip.startswith("int8 - fp32: ")
    assert int8_tip.endswith(f"[{lo:.4g}, {hi:.4g}]")
    assert "95% interval" in panel.caption.text()
    # sorting still goes by the number, not the text with its interval
    panel.table.sortByColumn(top1, Qt.SortOrder.DescendingOrder)
    shown = [panel.proxy.index(r, top1).data(Qt.ItemDataRole.UserRole) for r in range(2)]
    assert shown == sorted(shown, reverse=True)
    # the latency cells stay plain numbers
    assert "[" not in panel.model.item(0, header.index("latency p50 (ms)")).text()
