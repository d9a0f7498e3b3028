"""Model panel: open the real YOLOX-Nano, see its spec, edit preprocessing, bad files inline."""

from __future__ import annotations

import pytest

from app.gui.panels.model import ModelPanel
from app.gui.state import AppState


def test_open_real_model_shows_spec(qtbot, paths, make_panel):
    state = AppState()
    panel = make_panel(ModelPanel, state)
    panel.open_model(str(paths["model"]))
    qtbot.waitUntil(lambda: state.spec is not None, timeout=15000)
    assert state.spec.task == "detection"
    assert "yolox_nano.onnx" in panel.summary.text()
    assert panel.labels.count() == 80
    assert not panel.labels.item(0).icon().isNull()  # colour swatch
    assert panel.color.currentText() == "BGR"
    assert (panel.height.value(), panel.width.value()) == (416, 416)


def test_invalid_model_is_shown_inline(qtbot, tmp_path, make_panel):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx graph")
    panel = make_panel(ModelPanel, AppState())
    panel.open_model(str(bad))
    qtbot.waitUntil(lambda: panel.messages.has("model"), timeout=15000)
    assert "broken.onnx" in panel.messages.text("model")
    assert panel.state.spec is None


def test_edit_preprocessing_and_thresholds(qtbot, state, make_panel):
    panel = make_panel(ModelPanel, state)
    panel.std.setText("0, 1, 1")
    assert not panel.apply_edits()
    assert "std" in panel.messages.text("preprocess")
    panel.std.setText("1")
    panel.color.setCurrentText("RGB")
    panel.conf.setValue(0.5)
    assert panel.apply_edits(), panel.messages.text("preprocess")
    assert not panel.messages.has("preprocess")
    assert state.spec.preprocess.color == "RGB"
    assert state.spec.preprocess.std == [1.0, 1.0, 1.0]
    assert state.spec.postprocess.conf == 0.5


def test_first_run_banner_fetches_demo_from_local_server(
    qtbot, paths, settings, make_panel, monkeypatch
):
    """No model ever chosen: the inline banner offers the demo; a local http.server stands in
    for the upstream release ($INT8_STUDIO_DEMO_URL), and the downloaded model opens."""
    import functools
    import http.server
    import threading

    from app.gui.panels.model import demo_module

    if demo_module() is None:
        panel = make_panel(ModelPanel, AppState())
        assert not panel.banner.isVisible()
        return
    folder = paths["model"]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/yolox_nano.onnx"
        monkeypatch.setenv("INT8_STUDIO_DEMO_URL", url)
        state = AppState()
        panel = make_panel(ModelPanel, state)
        assert panel.banner.isVisible()
        assert "File > Open" in panel.banner.text.text()
        assert panel.get_demo()
        qtbot.waitUntil(lambda: state.spec is not None, timeout=30000)
        assert state.spec.task == "detection" and len(state.spec.labels) == 80
        assert not panel.banner.isVisible()
        assert not panel.messages.has("demo")
    finally:
        server.shutdown()
        server.server_close()


def test_banner_hidden_once_a_model_was_chosen(qtbot, settings, make_panel):
    settings.add_recent("models", "/somewhere/model.onnx")
    panel = make_panel(ModelPanel, AppState())
    assert not panel.banner.isVisible()


def two_class_state(tmp_path):
    from app.core.model.inspection import inspect_model
    from tests.two_class_model import two_class_model

    state = AppState(workspace_root=tmp_path / "ws")
    state.set_spec(inspect_model(two_class_model(tmp_path / "two")))
    return state


def test_edited_values_no_longer_say_guessed(qtbot, tmp_path, make_panel):
    """The summary kept "resize mode 'resize_crop', RGB (guessed)" after the user set it."""
    state = two_class_state(tmp_path)
    panel = make_panel(ModelPanel, state)
    resize_note = "resize mode 'resize_crop', RGB (guessed)"
    assert resize_note in panel.summary.text() and "mean/std assumed" in panel.summary.text()
    assert panel.apply_edits()  # applying untouched (rounded) values settles nothing
    assert resize_note in panel.summary.text() and "mean/std assumed" in panel.summary.text()
    panel.resize_mode.setCurrentText("stretch")
    assert panel.apply_edits()
    text = panel.summary.text()
    assert "resize mode 'stretch', RGB (set by you)" in text and resize_note not in text
    assert "mean/std assumed (guessed" in text  # still the guess: not edited
    panel.mean.setText("0.5")
    panel.std.setText("0.5")
    assert panel.apply_edits()
    assert "guessed" not in panel.summary.text()
    assert "mean 0.5, 0.5, 0.5, std 0.5, 0.5, 0.5 (set by you)" in panel.summary.text()


def test_label_names_are_not_cut(qtbot, tmp_path, make_panel):
    """Items were all sized like the last one: "0: notperson" showed as "0: notp…"."""
    panel = make_panel(ModelPanel, two_class_state(tmp_path))
    qtbot.wait(50)
    for row in range(panel.labels.count()):
        item = panel.labels.item(row)
        needed = panel.labels.sizeHintForIndex(panel.labels.indexFromItem(item)).width()
        assert panel.labels.visualItemRect(item).width() >= needed, item.text()


@pytest.mark.parametrize(
    "source, refusal, action, decoder",
    [
        ("yolox-nano-coco/yolox_nano.onnx", "is float16", "an FP32 copy", "yolox_raw"),
        # the converter leaves this export's nodes out of order: that refusal comes first
        (
            "yolox-nano-coco-tutorial-format/coco-yolox_nano.onnx",
            "out of order",
            "a copy in order",
            "boxes_xywh_cls_prob",
        ),
    ],
)
def test_a_half_precision_export_is_offered_a_copy(
    qtbot, tmp_path, make_panel, source, refusal, action, decoder
):
    """A model converted to float16 inputs and outputs (a half=True export): the refusal
    comes with a button that writes the FP32 copy (nodes in order) and opens it."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from tests.assets import MODELS

    half = tmp_path / "half.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(MODELS / source)), keep_io_types=False), half)
    state = AppState()
    panel = make_panel(ModelPanel, state)
    panel.open_model(str(half))
    qtbot.waitUntil(lambda: panel.messages.has("model"), timeout=15000)
    assert refusal in panel.messages.text("model") and state.spec is None
    assert panel.copy_btn.isVisibleTo(panel) and action in panel.copy_btn.text()
    panel.copy_btn.click()
    qtbot.waitUntil(lambda: state.spec is not None, timeout=30000)
    assert state.spec.path == str(tmp_path / "half.fp32.onnx")
    assert state.spec.postprocess.decoder == decoder and not panel.messages.has("model")
    assert not panel.copy_btn.isVisibleTo(panel)


def test_a_detector_taking_the_pictures_size_is_offered_a_copy(qtbot, tmp_path, make_panel):
    """A PaddleDetection export (image, im_shape, scale_factor; derived from the real YOLOX-Nano):
    the refusal names the inputs, and its button writes the copy that takes the image alone."""
    from tests.core.model.derived_layouts import build_layout

    model = build_layout("ppyoloe", tmp_path / "ppyoloe.onnx")
    state = AppState()
    panel = make_panel(ModelPanel, state)
    panel.open_model(str(model))
    qtbot.waitUntil(lambda: panel.messages.has("model"), timeout=15000)
    assert "im_shape, scale_factor" in panel.messages.text("model") and state.spec is None
    assert panel.copy_btn.text() == "Write a copy that takes the image alone and open it"
    panel.copy_btn.click()
    qtbot.waitUntil(lambda: state.spec is not None, timeout=30000)
    assert state.spec.path == str(tmp_path / "ppyoloe.adapted.onnx")
    assert state.spec.postprocess.decoder == "boxes_scores" and not panel.messages.has("model")
