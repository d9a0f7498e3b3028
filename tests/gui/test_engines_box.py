"""The Variants panel's Engines group on a real ResNet-8 workspace: on this machine (no TensorRT)
disabled with the exact reason; with the recording TensorRT stand-in (argument plumbing only, it
builds nothing real) int8 + fp16 built in the worker with phases as progress, Cancel keeping
nothing, the table listing the records, reuse, and the engines chosen on `tensorrt`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.backends.registry import status_of
from app.backends.tensorrt.status import tensorrt_status
from app.backends.tensorrt.workspace_engines import list_engines, unavailable_sentence
from app.core.errors import UserError
from app.gui.panels.variants import VariantsPanel
from app.gui.state import AppState
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn
from tests.backends.tensorrt.workspace_fixture import make_workspace

V10 = "10.16.1.11"


@pytest.fixture(scope="module")
def ws_root(tmp_path_factory, assets) -> Path:
    return make_workspace(tmp_path_factory.mktemp("engines-gui")).root


@pytest.fixture
def trt_state(ws_root) -> AppState:
    from app.core.model.workspace import Workspace

    state = AppState(workspace_root=ws_root)
    state.set_spec(Workspace.open(ws_root).spec())
    return state


def slow_stand_in(seconds: float) -> RecordingTrtStandIn:
    """The recording stand-in, each build step taking `seconds` (so progress and Cancel can be
    seen between TensorRT's steps, as they would be in a real build)."""
    trt = RecordingTrtStandIn(V10)
    plain = trt._dispatch

    def paced(obj, base, method, *args):
        if method == "step_complete":
            time.sleep(seconds)
        return plain(obj, base, method, *args)

    trt._dispatch = paced
    return trt


def probed(qtbot, panel: VariantsPanel) -> None:
    qtbot.waitUntil(lambda: bool(panel.engines.statuses), timeout=30000)


@pytest.mark.skipif(tensorrt_status().available, reason="TensorRT is installed here")
def test_without_tensorrt_disabled_saying_why_and_how(qtbot, trt_state, make_panel) -> None:
    panel = make_panel(VariantsPanel, trt_state)
    box = panel.engines
    probed(qtbot, panel)
    reason = unavailable_sentence("tensorrt", tensorrt_status().reason)
    assert box.reason.text() == reason and box.reason.isVisible()
    assert "pip install tensorrt-cu12 --extra-index-url https://pypi.nvidia.com" in reason
    assert box.build_btn.isVisible() and not box.build_btn.isEnabled()
    assert not any(b.isEnabled() for b in box.variant_boxes.values())
    assert box.build_btn.toolTip() == reason
    assert not box.build() and panel.messages.text("engines").endswith(reason)
    assert box.table.rowCount() == 0 and box.table.isHidden()  # no empty table taking room

    box.kind.setCurrentIndex(box.kind.findData("ort-tensorrt"))
    ort_reason = unavailable_sentence("ort-tensorrt", status_of("ort-tensorrt").reason)
    assert box.reason.text() == ort_reason and not box.build_btn.isEnabled()
    assert "pip install onnxruntime-gpu tensorrt-cu12 --extra-index-url" in ort_reason

    # Another job of the panel ends: the panel re-enables its job buttons, Build stays disabled.
    with qtbot.waitSignal(trt_state.variants_changed, timeout=10000):
        panel.run_job(lambda progress, cancel: None, name="noop",
                      on_finished=lambda _r: trt_state.variants_changed.emit())  # fmt: skip
    qtbot.waitUntil(lambda: panel.job is None)
    assert not box.build_btn.isEnabled() and panel.build_btn.isEnabled()
    assert not (Path(trt_state.workspace().root) / "engines").exists()


def test_build_cancel_list_reuse_and_choose_on_tensorrt(qtbot, trt_state, make_panel) -> None:
    panel = make_panel(VariantsPanel, trt_state, size=(1300, 900))
    box = panel.engines
    engines = trt_state.workspace().root / "engines"
    cudart = RecordingCudartStandIn()
    box.use_modules(slow_stand_in(0.3), cudart)
    probed(qtbot, panel)
    assert box.reason.isHidden() and box.build_btn.isEnabled()

    # Cancel while TensorRT is in its phases: nothing is kept that looks like an engine.
    for name, tick in box.variant_boxes.items():
        tick.setChecked(name == "fp32")
    assert box.build()
    assert not box.build_btn.isEnabled() and not panel.build_btn.isEnabled()
    qtbot.waitUntil(lambda: "Building engine" in panel.status.text(), timeout=20000)
    done = panel.job.signals.done
    with qtbot.waitSignal(done, timeout=20000):
        panel.cancel_btn.click()
    assert panel.status.text() == "Cancelled; the engine being built was not kept."
    assert not list(engines.glob("*.engine*")) and list_engines(trt_state.workspace()) == []
    assert box.build_btn.isEnabled()

    # fp16 + int8 (in the panel's order) in the worker, TensorRT's phases as the job bar's progress.
    trt = slow_stand_in(0.06)
    box.use_modules(trt, cudart)
    probed(qtbot, panel)
    for name, tick in box.variant_boxes.items():
        tick.setChecked(name in ("int8", "fp16"))
    seen: list[tuple[float, str]] = []
    assert box.build()
    panel.job.signals.progress.connect(lambda f, m: seen.append((f, m)))
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert panel.status.text() == (
        f"engines: fp16 built, int8 built (TensorRT {V10} on Stand-in GPU)"
    ), panel.messages.text("job")
    assert any(m == "fp16: Building engine" and 0 < f < 0.5 for f, m in seen), seen
    assert any(m == "int8: Building engine" and 0.5 < f < 1 for f, m in seen), seen
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)  # one bar for the whole build
    assert len([c for c in trt._calls if c[0] == "create_network"]) == 2

    rows = {r["variant"]: r for r in box.rows()}
    assert set(rows) == {"int8", "fp16"}
    for variant, route in (("int8", "qdq graph"), ("fp16", "fp16 graph")):
        row = rows[variant]
        assert (row["engine"], row["precision"], row["route"]) == ("tensorrt", variant, route)
        assert (row["TensorRT"], row["GPU"]) == (V10, "Stand-in GPU (sm 9.0)")
        assert row["shapes"] == "input_1 1x32x32x3" and row["state"] == "usable"
        assert row["build time"].endswith(" s")  # paced steps: measurably above 0
        assert row["size"] == f"{Path(row['file']).stat().st_size} B"  # the stand-in's tiny plan
        assert Path(row["file"]).parent == engines and Path(row["file"]).is_file()

    # Again: both reused, TensorRT not asked to build anything.
    again = RecordingTrtStandIn(V10)
    box.use_modules(again, cudart)
    probed(qtbot, panel)
    assert box.build()
    qtbot.waitUntil(lambda: panel.job is None, timeout=30000)
    assert panel.status.text().startswith("engines: fp16 reused, int8 reused")
    assert again._calls == [] and len(box.rows()) == 2

    # The built engines are what the variants run as on `tensorrt` (Live, Compare, Results).
    assert trt_state.variant_path("int8", "tensorrt") == rows["int8"]["file"]
    assert trt_state.variant_path("int8-trt", "tensorrt") == rows["int8"]["file"]
    assert trt_state.variant_path("fp16", "tensorrt") == rows["fp16"]["file"]
    assert trt_state.variant_path("fp16").endswith("fp16.onnx")  # other backends: the graph
    with pytest.raises(UserError, match=r"no TensorRT engine of 'fp32'.*--variants fp32"):
        trt_state.variant_path("fp32", "tensorrt")
