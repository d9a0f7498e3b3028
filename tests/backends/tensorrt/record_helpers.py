"""Engine records with sensible defaults, for the record and runner tests."""

from __future__ import annotations

from typing import Any

from app.backends.tensorrt import BuildSettings, EngineExpectation, EngineRecord


def _record(**kw: Any) -> EngineRecord:
    base = dict(trt_version="10.14.1.48", gpu_name="NVIDIA H100 80GB HBM3",
                compute_capability="9.0", model_sha256="a" * 64,
                settings=BuildSettings(precision="fp16", graph="fp16").identity())  # fmt: skip
    return EngineRecord(**{**base, **kw})


def _expect(**kw: Any) -> EngineExpectation:
    r = _record()
    base = dict(trt_version=r.trt_version, gpu_name=r.gpu_name,
                compute_capability=r.compute_capability, model_sha256=r.model_sha256,
                settings=r.settings)  # fmt: skip
    return EngineExpectation(**{**base, **kw})
