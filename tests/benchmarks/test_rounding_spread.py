"""The noise-floor benchmark's perturbed copies (real ResNet-8 INT8): only the float conv weights
change, by about 1e-6 relative, and the copy is a valid variant that runs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from app.benchmarks.rounding_spread import float_conv_weights, perturbed_copy, spread
from app.core.quant.speed import cpu_session
from tests.assets import needs_assets
from tests.workspaces import resnet8_int8_workspace

pytestmark = needs_assets


def _inits(path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def test_perturbed_copy_changes_only_float_conv_weights_by_rounding_size(tmp_path):
    ws = resnet8_int8_workspace(tmp_path)
    floats = float_conv_weights(onnx.load(str(ws.variant_path("int8"))))
    assert floats, "ResNet-8's INT8 keeps its stem conv float"
    name = perturbed_copy(ws, "int8", seed=1)
    assert name == "int8-p1" and ws.valid_variant(name)
    assert ws.variant_meta(name)["perturbed"] == [1e-6, 1]
    before, after = _inits(ws.variant_path("int8")), _inits(ws.variant_path(name))
    assert before.keys() == after.keys()
    for key, value in before.items():
        if key in floats:
            rel = np.abs(after[key] / np.where(value == 0, 1, value) - 1)
            assert 0 < rel.max() < 1e-5
        else:
            np.testing.assert_array_equal(after[key], value)
    session = cpu_session(ws.variant_path(name), 1)
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    out = session.run(None, {session.get_inputs()[0].name: np.ones(shape, np.float32)})[0]
    assert np.isfinite(out).all()


def test_spread_reports_range_and_deviation_per_figure():
    summary = {
        "int8": {"unseen": {"diff": -1.0, "agreement": 90.0}, "videos": {"value": 80.0}},
        "int8-p1": {"unseen": {"diff": -0.5, "agreement": 92.0}, "videos": {"value": 88.0}},
    }
    rows = {r[1]: r[2:] for r in spread(summary, ["int8"], 1)}
    assert rows["unseen mAP vs fp32"] == (-1.0, -0.5, 0.35)
    assert rows["video agreement"] == (80.0, 88.0, 5.66)
    assert "pool agreement" not in rows  # not scored: not reported
