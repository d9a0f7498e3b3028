"""The speed benchmark's `fp32-prepared` row: the FP32 graph every INT8 variant starts from
(preparation and the Focus fold, nothing quantized), registered as a valid FP32 variant that
computes what the model computes, so its latency splits INT8's speed-up honestly."""

from __future__ import annotations

import numpy as np
import onnx

from app.benchmarks.int8_speed import PREPARED_FP32, write_prepared_fp32
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.speed import cpu_session
from tests.assets import COCO_DEV64, YOLOX, needs_assets

pytestmark = needs_assets


def test_prepared_fp32_is_the_model_folded_and_computes_the_same(tmp_path):
    spec = inspect_model(YOLOX)
    ws = Workspace.for_model(spec, tmp_path / "ws")
    assert write_prepared_fp32(ws, spec.path) == PREPARED_FP32
    assert ws.valid_variant(PREPARED_FP32)
    meta = ws.variant_meta(PREPARED_FP32)
    assert meta["precision"] == "fp32"
    assert meta["preparation"]["space_to_depth_folded"] == ["Conv_41"]
    graph = onnx.load(str(ws.variant_path(PREPARED_FP32)))
    assert not any(n.op_type in ("Slice", "QuantizeLinear") for n in graph.graph.node)
    pre = Preprocessor(spec.preprocess)
    a, b = cpu_session(spec.path, 1), cpu_session(ws.variant_path(PREPARED_FP32), 1)
    for photo in sorted((COCO_DEV64 / "images").glob("*.jpg"))[:3]:
        x = pre(read_image(photo))[0]
        np.testing.assert_allclose(
            b.run(None, {"images": x})[0], a.run(None, {"images": x})[0], rtol=1e-4, atol=1e-3
        )
