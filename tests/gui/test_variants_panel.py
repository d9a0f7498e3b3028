"""Variants panel: build FP16 and INT8 for real from a real calibration, cancel, sort by size."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.quant.calibration import calibrate
from app.gui.panels.variants import COLUMNS, VariantsPanel


def rows(panel: VariantsPanel) -> dict[str, list[str]]:
    t = panel.table
    return {
        t.item(r, 0).text(): [t.item(r, c).text() for c in range(t.columnCount())]
        for r in range(t.rowCount())
    }


def test_build_cancel_then_build_fp16_int8(qtbot, state, paths, make_panel):
    calibrate(state.workspace(), paths["images"], count=4, method="minmax")
    panel = make_panel(VariantsPanel, state)
    assert set(rows(panel)) == {"fp32"}

    assert panel.build()
    job = panel.job
    with qtbot.waitSignal(job.signals.done, timeout=120000):
        job.cancel()
    assert "Cancelled" in panel.status.text()
    assert panel.job is None and panel.build_btn.isEnabled()
    assert not state.workspace().valid_variant("int8")

    with qtbot.waitSignal(state.variants_changed, timeout=180000):
        assert panel.build()
    qtbot.waitUntil(lambda: panel.job is None, timeout=10000)
    table = rows(panel)
    assert {"fp32", "fp16", "int8", "fp32-prep"} <= set(table), table
    assert table["fp32-prep"][COLUMNS.index("precision")] == "fp32"
    size = COLUMNS.index("size")
    assert table["int8"][COLUMNS.index("valid")] == "yes"
    assert "built" in panel.status.text()
    assert "convolutions/matmuls kept float" in panel.messages.text("float")
    # YOLOX-Nano's Focus stem was folded before quantizing, in both variants, and it says so
    prepared = panel.messages.text("prepared")
    assert "fp16, int8, fp32-prep: Focus stem folded into one strided conv" in prepared
    # timed against FP32 on this CPU, as the CLI does: the verdict and the SiLU form YOLOX-Nano
    # kept are shown, never assumed
    record = state.workspace().variant_meta("int8")
    speed = panel.messages.text("speed")
    assert "fp32" in speed and "1 thread" in speed
    assert f"SiLUs {record['silu_form']['chosen']}" in speed
    assert state.workspace().variant_meta("fp32-prep")["speed"]["verdict"] in speed
    # built again with nothing changed: both are reused, and the status says so
    with qtbot.waitSignal(state.variants_changed, timeout=180000):
        assert panel.build()
    qtbot.waitUntil(lambda: panel.job is None, timeout=10000)
    assert panel.status.text() == "reused fp16, int8, fp32-prep (up to date)"

    # Sizes sort by bytes, not by text ("1.3 MB" < "3.5 MB" < "12 KB" as text would be wrong too).
    panel.table.sortItems(size, Qt.SortOrder.AscendingOrder)
    ordered = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    count = panel.table.rowCount()
    nbytes = [panel.table.item(r, size).data(Qt.ItemDataRole.UserRole) for r in range(count)]
    assert nbytes == sorted(nbytes)
    assert ordered[0] == "int8" and set(ordered[-2:]) == {"fp32", "fp32-prep"}


def test_nothing_ticked_is_inline_error(qtbot, state, make_panel):
    panel = make_panel(VariantsPanel, state)
    for box in panel.precisions.values():
        box.setChecked(False)
    assert not panel.build()
    assert "tick" in panel.messages.text("build")


def test_failed_job_is_inline_and_the_bar_resets(qtbot, state, make_panel):
    """INT8 without a calibration fails inside the job: the job bar shows it running, then the
    message is inline and the panel can start again."""
    panel = make_panel(VariantsPanel, state)
    panel.precisions["fp16"].setChecked(False)
    assert panel.build()
    assert panel.progress.isVisible() and panel.cancel_btn.isEnabled()
    assert not panel.build_btn.isEnabled() and not panel.build()  # one job at a time
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert "no calibration yet" in panel.messages.text("job")
    assert panel.build_btn.isEnabled() and not panel.cancel_btn.isEnabled()
    assert not panel.progress.isVisible()


def test_building_for_openvino_makes_int8_ov_timed_on_openvino(qtbot, state, paths, make_panel):
    """The backend picked is the runtime the INT8 graph is laid out for and timed on: OpenVINO
    gets `int8-ov` (Q/DQ on compute inputs only), timed against FP32 on OpenVINO itself."""
    calibrate(state.workspace(), paths["images"], count=4, method="minmax")
    panel = make_panel(VariantsPanel, state)
    qtbot.waitUntil(lambda: panel.target.findData("openvino-cpu") >= 0, timeout=30000)
    panel.target.setCurrentIndex(panel.target.findData("openvino-cpu"))
    panel.precisions["fp16"].setChecked(False)
    panel.precisions["fp32-prep"].setChecked(False)  # (timed in the first test)
    panel.equalized.setChecked(True)  # and the equalised graph beside it, as --equalize does
    with qtbot.waitSignal(state.variants_changed, timeout=240000):
        assert panel.build()
    qtbot.waitUntil(lambda: panel.job is None, timeout=10000)
    table = rows(panel)
    assert "int8-ov" in table and "int8" not in table, table
    assert table["int8-eq-ov"][COLUMNS.index("valid")] == "yes"
    eq = state.workspace().variant_meta("int8-eq-ov")
    assert eq["target"] == "openvino" and eq["equalization"]["tensors"]
    assert "equalization" not in state.workspace().variant_meta("int8-ov")
    assert "int8-eq-ov:" in panel.messages.text("float")
    assert "uneven conv inputs equalised" in panel.messages.text("float")
    assert table["int8-ov"][COLUMNS.index("valid")] == "yes"
    record = state.workspace().variant_meta("int8-ov")
    assert record["target"] == "openvino" and record["speed"]["backend"] == "openvino-cpu"
    speed = panel.messages.text("speed")
    assert "int8-ov" in speed and "on openvino-cpu here" in speed
