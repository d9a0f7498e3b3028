"""A model saved with its weights in a separate .onnx.data file (as torch.onnx.export writes large
models) gets the same INT8 recipe as the same model in one file: bias correction included. Its
measurement folds YOLOX's Focus stem, which reads initializers, and external ones resolve only
beside the model file: the correction was skipped (a warning in the log) for such a model."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from app.core.model.inspection import inspect_model
from app.core.quant.bias_correction import load_channel_means
from app.core.quant.calibration import latest_calibration
from app.core.quant.quantize import quantize
from app.core.safe_json import load_json
from tests.assets import RESNET8, YOLOX, needs_assets
from tests.workspaces import minmax_workspace

pytestmark = needs_assets


def test_a_model_with_external_weights_gets_its_bias_correction(tmp_path, tmp_path_factory):
    model = onnx.load(str(next(YOLOX.glob("*.onnx"))))
    path = tmp_path / "yolox_external.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="yolox_external.onnx.data"
    )
    assert (tmp_path / "yolox_external.onnx.data").stat().st_size > 3_000_000
    ws = minmax_workspace(tmp_path_factory, inspect_model(path), count=4)
    (record,) = quantize(ws, precisions=("int8",))
    assert load_channel_means(latest_calibration(ws)) is not None
    assert record["bias_correction"] == {"convs": 97}  # YOLOX-Nano's INT8 convs, as in one file


def test_an_int8_built_without_its_correction_is_rebuilt_once_the_correction_can_be_made(
    tmp_path_factory,
):
    """Calibration photos moved away: channel means cannot be measured, the INT8 graph is built
    without the correction, and its record says so; the photos back, `quantize` rebuilds it
    instead of reusing the uncorrected graph."""
    ws = minmax_workspace(tmp_path_factory, inspect_model(RESNET8), count=4)
    photos = [Path(p) for p in load_json(latest_calibration(ws) / "meta.json")["images_used"]]
    kept = {p: p.read_bytes() for p in photos}
    for p in photos:
        p.unlink()
    (first,) = quantize(ws, precisions=("int8",))
    assert first["bias_correction"]["convs"] == 0
    for p, data in kept.items():
        p.write_bytes(data)
    (second,) = quantize(ws, precisions=("int8",))
    assert not second["reused"]
    assert second["bias_correction"]["convs"] > 0


def test_a_graph_recorded_without_its_correction_under_the_plain_key_is_rebuilt(
    tmp_path_factory,
):
    """A record that says its graph missed its correction (a model with external weights, whose
    means could not be measured before the fix) is rebuilt now that the means exist, and the
    corrected graph is then reused as usual."""
    ws = minmax_workspace(tmp_path_factory, inspect_model(RESNET8), count=4)
    (built,) = quantize(ws, precisions=("int8",))
    assert built["bias_correction"]["convs"] > 0
    record = ws.variant_path("int8").with_suffix(".json")
    meta = load_json(record)
    meta["bias_correction"] = {"convs": 0, "reason": "no abc/channel_means.json"}
    record.write_text(json.dumps(meta))
    (again,) = quantize(ws, precisions=("int8",))
    assert not again["reused"] and again["bias_correction"]["convs"] > 0
    (third,) = quantize(ws, precisions=("int8",))
    assert third["reused"]  # corrected now: reused as usual
