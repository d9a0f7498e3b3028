"""Results panel: evaluate()-shaped dicts as a sortable table and an accuracy/latency scatter."""

from __future__ import annotations

import json

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
    assert panel.metric.currentText() == "map50"
    assert len(panel.scatter.data) == 2


def test_bad_file_inline(qtbot, tmp_path, state, make_panel):
    panel = make_panel(ResultsPanel, state)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert not panel.load_file(bad)
    assert "bad.json" in panel.messages.text("load")
