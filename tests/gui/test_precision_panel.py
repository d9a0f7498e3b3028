"""Precision panel on a real ResNet-8 calibration: analyse, inspect a block, keep it float and
re-score, then the automatic mixed-precision search; plus the inline problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.gui.panels.precision import PrecisionPanel
from app.gui.precision_widgets import KEEP_COL
from tests.assets import CIFAR
from tests.assets import RESNET8 as RESNET

pytestmark = pytest.mark.skipif(
    not RESNET.is_dir() or not CIFAR.is_dir(),
    reason=f"test assets missing: {RESNET} or {CIFAR}",
)


@pytest.fixture(scope="module")
def resnet_spec():
    from app.core.model.inspection import inspect_model

    return inspect_model(RESNET)


@pytest.fixture(scope="module")
def calibrated_root(tmp_path_factory, resnet_spec):
    """A workspace with a real 50-image MinMax calibration (nothing else built)."""
    import copy

    from app.core.model.workspace import Workspace
    from app.core.quant.calibration import calibrate

    root = tmp_path_factory.mktemp("resnet8-ws")
    ws = Workspace.for_model(copy.deepcopy(resnet_spec), root)
    calibrate(ws, CIFAR, count=50, method="minmax")
    return root


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory) -> Path:
    """100 test images, 10 per class, in class-named subfolders (labels from folder names)."""
    folder = tmp_path_factory.mktemp("cifar-eval")
    for cls in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        (folder / cls.name).mkdir()
        for image in sorted(cls.glob("*.jpg"))[:10]:
            shutil.copy(image, folder / cls.name / image.name)
    return folder


def resnet_state(root: Path, spec):
    import copy

    from app.gui.state import AppState

    st = AppState(workspace_root=root)
    st.set_spec(copy.deepcopy(spec))
    return st


def click_row(qtbot, table, row: int) -> None:
    rect = table.visualItemRect(table.item(row, 1))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_analyse_inspect_keep_float_rerun_and_auto(
    qtbot, calibrated_root, eval_folder, resnet_spec, make_panel
):
    state = resnet_state(calibrated_root, resnet_spec)
    panel = make_panel(PrecisionPanel, state, size=(1200, 800))
    assert not panel.messages.has("calibration")
    panel.images.setText(str(eval_folder))

    assert panel.analyse()
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert not panel.messages.has("job"), panel.messages.text("job")
    n = len(panel.blocks)
    assert n >= 3 and panel.table.rowCount() == n
    drawn = sum(len(bar.opts["x"]) for bar in panel.bars.values())
    assert drawn == n
    values = [b["output_sqnr_db"] for b in panel.blocks]
    assert values == sorted(values)  # worst (lowest output SQNR) first
    assert (calibrated_root / "results" / "precision-analysis-ort-cpu.json").is_file()

    # Clicking the first row selects the worst block: histogram and both clip lines shown.
    click_row(qtbot, panel.table, 0)
    assert panel.selected == 0
    xs, ys = panel.hist.getData()
    assert xs is not None and len(ys) == 128 and ys.max() > 0
    assert all(line.isVisible() for line in panel.clip_lines)
    tensor = panel.current_tensor()
    assert tensor is not None and tensor["block"] == panel.blocks[0]["block"]
    assert [line.value() for line in panel.clip_lines] == pytest.approx(list(tensor["clip"]))
    assert "p99.99" in panel.tensor_stats.text()
    assert len(panel.selection_bar.opts["x"]) == 1

    # Keep the worst block float, re-run: before and after rows, the variant in the workspace.
    panel.table.item(0, KEEP_COL).setCheckState(Qt.CheckState.Checked)
    assert panel.kept_indices() == {0}
    assert panel.keep_float_nodes() == panel.blocks[0]["nodes"]
    assert len(panel.kept_marks.data) == 1
    assert panel.rerun()
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert not panel.messages.has("job"), panel.messages.text("job")
    roles = [panel.compare.item(r, 0).text() for r in range(panel.compare.rowCount())]
    assert roles == ["FP32", "before", "after"]
    assert panel.compare.item(2, 1).text() == "int8-custom"
    assert float(panel.compare.item(2, 3).text()) > 0
    ws = state.workspace()
    assert ws.valid_variant("int8-custom")
    kept = set((ws.variant_meta("int8-custom") or {})["kept_float"])
    assert set(panel.blocks[0]["nodes"]) & kept

    # The automatic search: trials table, ticked blocks follow its choice, variant written.
    # Its pool: the evaluation folder plus 50 unlabelled photos (the calibration's left out).
    panel.pool_field.setText(str(CIFAR / "ship"))
    assert panel.auto()
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert not panel.messages.has("job"), panel.messages.text("job")
    assert panel.trials.rowCount() >= 2
    # judged on agreement with FP32, the labelled top-1 drop as a guard; then checked on the
    # held-out images the search never used
    assert panel.trials.horizontalHeaderItem(2).text() == "top1_agreement"
    assert panel.trials.horizontalHeaderItem(3).text() == "top1 drop"
    text = panel.messages.text("auto")
    assert "int8-mp" in text and "Held out (" in text
    images = panel.trials_report["images"]
    assert [Path(s["source"]) for s in images["sources"]] == [eval_folder, CIFAR / "ship"]
    assert images["sources"][1]["images"] + images["calibration_images_excluded"] == 50
    held = panel.trials_report["held_out"]["chosen"]["metrics"]
    assert f"top1_agreement {held['top1_agreement']:.4g}" in text.split("Held out")[1]
    assert ws.valid_variant("int8-mp")
    chosen = set(panel.trials_report["kept_float"])  # compute nodes, heads included
    ticked = {panel.blocks[i]["block"] for i in panel.kept_indices()}
    assert ticked == {b["block"] for b in panel.blocks} & chosen


def test_problems_are_inline(qtbot, tmp_path, resnet_spec, calibrated_root, make_panel):
    fresh = make_panel(PrecisionPanel, resnet_state(tmp_path / "ws", resnet_spec))
    assert "calibrate first" in fresh.messages.text("calibration")
    assert not fresh.analyse()
    assert "calibrate first" in fresh.messages.text("analyse")

    panel = make_panel(PrecisionPanel, resnet_state(calibrated_root, resnet_spec))
    empty = tmp_path / "empty"
    empty.mkdir()
    panel.images.setText(str(empty))
    assert not panel.rerun()
    assert "no images" in panel.messages.text("rerun")
    panel.images.setText("")
    assert not panel.auto()
    assert "folder of evaluation images" in panel.messages.text("auto")
    panel.images.setText(str(CIFAR / "cat"))
    panel.pool_field.setText(f"{CIFAR / 'dog'}; {tmp_path / 'no-such-video.mp4'}")
    assert not panel.auto()
    assert "no-such-video.mp4: not a folder or a video file" in panel.messages.text("auto")
    assert panel.job is None


def test_cancel_keeps_earlier_analysis(qtbot, resnet_spec, calibrated_root, make_panel):
    panel = make_panel(PrecisionPanel, resnet_state(calibrated_root, resnet_spec))
    before = panel.analysis  # the saved analysis of the first test, reloaded on open
    assert panel.analyse()
    job = panel.job
    with qtbot.waitSignal(job.signals.done, timeout=60000):
        panel.cancel()
    assert "Cancelled" in panel.status.text()
    assert panel.job is None and panel.analyse_btn.isEnabled() and not panel.cancel_btn.isEnabled()
    assert panel.analysis is before


def test_damaged_saved_analysis_is_ignored(tmp_path, resnet_spec, calibrated_root, make_panel):
    """The saved analysis is read through the capped reader: absurd nesting (a RecursionError
    from json.loads) means "analyse again", not a panel that fails to open."""
    root = tmp_path / "ws"
    shutil.copytree(calibrated_root, root)
    saved = root / "results" / "precision-analysis-ort-cpu.json"
    saved.parent.mkdir(exist_ok=True)
    saved.write_text("[" * 200_000 + "]" * 200_000)
    panel = make_panel(PrecisionPanel, resnet_state(root, resnet_spec))
    assert panel.analysis is None and not panel.messages.has("calibration")
    assert panel.analyse_btn.isEnabled()


def test_long_tensorflow_names_lose_their_middle(qtbot):
    """Names were cut at the start ("…ormalization_5/FusedBatchNormV3"): rows of look-alikes."""
    from PySide6.QtCore import Qt

    from app.gui.precision_widgets import BlockTable, short_block

    name = (
        "StatefulPartitionedCall/model/conv2d_3/BiasAdd;StatefulPartitionedCall/efficientnet"
        "-lite0/model/blocks_10/depthwise_conv2d/depthwise_1"
    )
    table = BlockTable()
    qtbot.addWidget(table)
    table.fill([{"block": name, "op_type": "Conv", "output_sqnr_db": 20.0, "score_db": 18.0}])
    item = table.item(0, 1)
    assert item.toolTip() == name
    # TensorFlow's wrapper scope (on every op) dropped; the rest elided by the view to fit
    assert item.text() == "efficientnet-lite0/model/blocks_10/depthwise_conv2d/depthwise_1"
    assert table.textElideMode() == Qt.TextElideMode.ElideMiddle and not table.wordWrap()
    text = short_block(name)  # the selected block's title: a fixed width, middle elided
    assert len(text) == 34 and text.startswith("efficient") and text.endswith("depthwise_1")
    assert short_block("model/dense/MatMul;model/dense/BiasAdd") == "model/dense/BiasAdd"
