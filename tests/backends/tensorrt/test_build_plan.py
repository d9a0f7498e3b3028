"""`plan_build`: how TensorRT 10 and 11 must build what the user asked for (pure)."""

from __future__ import annotations

import json

import pytest

from app.backends.tensorrt import (
    BuildSettings,
    plan_build,
)
from app.core.errors import UserError
from tests.backends.tensorrt.standins import RecordingTrtStandIn


# ------------------------------------------------------------------------------------------
# plan_build: the 10 -> 11 rules
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "major", "net", "flags", "calib"),
    [
        ({}, 10, (), (), False),
        ({}, 11, (), (), False),
        ({"precision": "fp16"}, 10, (), ("FP16",), False),
        ({"precision": "fp16", "graph": "fp16"}, 10, ("STRONGLY_TYPED",), (), False),
        ({"precision": "fp16", "graph": "fp16"}, 11, (), (), False),
        ({"precision": "int8", "graph": "qdq"}, 10, ("STRONGLY_TYPED",), (), False),
        ({"precision": "int8", "graph": "qdq"}, 11, (), (), False),
        ({"precision": "int8", "int8_source": "calibrator"}, 10, (), ("INT8",), True),
        (
            {"precision": "int8", "int8_source": "calibrator", "int8_fp16_fallback": True},
            10,
            (),
            ("INT8", "FP16"),
            True,
        ),
        ({"version_compatible": True}, 11, (), ("VERSION_COMPATIBLE",), False),
        ({"precision": "int8", "graph": "qdq", "version_compatible": True}, 10,
         ("STRONGLY_TYPED",), ("VERSION_COMPATIBLE",), False),
    ],
)  # fmt: skip
def test_plan_flags(kw: dict, major: int, net: tuple, flags: tuple, calib: bool) -> None:
    plan = plan_build(BuildSettings(**kw), major)
    assert plan.network_flags == net
    assert plan.builder_flags == flags
    assert plan.use_calibrator is calib
    # Never mix STRONGLY_TYPED with precision flags (TensorRT rejects it: NVIDIA/TensorRT#4253).
    assert not ("STRONGLY_TYPED" in net and {"FP16", "INT8"} & set(flags))
    # 11 has no weak typing at all.
    if major >= 11:
        assert plan.strongly_typed and not {"FP16", "INT8"} & set(flags)


def test_plan_calibrator_choice_and_limits() -> None:
    s = BuildSettings(precision="int8", int8_source="calibrator", calibrator="minmax",
                      workspace_bytes=123, opt_level=1)  # fmt: skip
    plan = plan_build(s, 10)
    assert plan.calibrator == "minmax" and plan.workspace_bytes == 123 and plan.opt_level == 1
    assert plan_build(BuildSettings(precision="int8", graph="qdq"), 10).calibrator is None


def test_network_flag_bits_resolvenames() -> None:
    trt = RecordingTrtStandIn("10.3.0")
    plan = plan_build(BuildSettings(precision="int8", graph="qdq"), 10)
    assert plan.network_flag_bits(trt) == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert plan_build(BuildSettings(), 11).network_flag_bits(trt) == 0


@pytest.mark.parametrize(
    ("kw", "major", "message"),
    [
        ({"precision": "int8", "int8_source": "calibrator"}, 11,
         "TensorRT 11 removed calibrator INT8; use the Q/DQ graph"),
        ({"precision": "fp16"}, 11, "TensorRT 11 has no FP16 builder flag"),
        ({"precision": "int8"}, 10, "INT8 from Q/DQ needs the Q/DQ graph"),
        ({"precision": "int8", "graph": "qdq", "int8_source": "calibrator"}, 10,
         "calibrator INT8 calibrates the FP32 graph"),
        ({"graph": "qdq"}, 10, "Q/DQ graph builds an INT8 engine"),
        ({"graph": "fp16"}, 11, "FP16 graph cannot build a FP32 engine"),
        ({"precision": "fp8"}, 10, "unknown precision"),
        ({"calibrator": "percentile"}, 10, "unknown calibrator"),
        ({"opt_level": 9}, 10, "0..5"),
        ({"workspace_bytes": 0}, 10, "larger than 0"),
        ({}, 8, "TensorRT 8 is too old"),
        ({"profiles": {"images": ((2, 3), (1, 3), (4, 3))}}, 10, "min <= opt <= max"),
    ],
)  # fmt: skip
def test_plan_refuses_impossible_combos(kw: dict, major: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        plan_build(BuildSettings(**kw), major)


def test_calibrator_on_11_message_without_calibrator_hint() -> None:
    with pytest.raises(UserError) as err:
        plan_build(BuildSettings(precision="int8"), 11)
    assert "calibrator" not in str(err.value)  # 11 has no calibrator to suggest


def test_identity_leaves_out_paths_and_is_json() -> None:
    s = BuildSettings(timing_cache_path="/tmp/x.cache", profiles={"a": ((1,), (2,), (3,))})
    ident = s.identity()
    assert "timing_cache_path" not in ident
    assert json.loads(json.dumps(ident))["profiles"] == {"a": [[1], [2], [3]]}
