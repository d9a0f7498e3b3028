"""Native TensorRT backend (10.x and 11.x): status, build planning, engine records, build, run.

Importing this package never imports `tensorrt` or `cuda`; only building or running an engine
does. The pure parts (settings, engine records) work and are tested everywhere.
"""

from __future__ import annotations

from app.backends.tensorrt.engine_header import (
    EngineExpectation,
    EngineRecord,
    check_engine,
    side_path,
)
from app.backends.tensorrt.settings import BuildPlan, BuildSettings, plan_build
from app.backends.tensorrt.status import tensorrt_status

__all__ = [
    "BuildPlan",
    "BuildSettings",
    "EngineExpectation",
    "EngineRecord",
    "check_engine",
    "plan_build",
    "side_path",
    "tensorrt_status",
]
