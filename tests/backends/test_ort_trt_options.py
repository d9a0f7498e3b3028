"""ONNX Runtime TensorRT-provider options built from app settings (pure mapping, no GPU needed)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from app.backends.ort_trt_options import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    OrtTrtSettings,
    cache_dirs,
    ort_trt_providers,
    profile_shape_options,
    trt_provider_options,
)
from app.core.errors import UserError
from tests.assets import YOLOX_ONNX as YOLOX


def test_fp32_defaults_put_caches_in_workspace(tmp_path: Path) -> None:
    opts = trt_provider_options(OrtTrtSettings(workspace=tmp_path))
    assert "trt_fp16_enable" not in opts and "trt_int8_enable" not in opts
    assert opts["trt_engine_cache_enable"] is True
    assert opts["trt_engine_cache_path"] == str(tmp_path / "ort_trt" / "engines")
    assert opts["trt_engine_cache_prefix"] == "fp32_fp32"
    assert opts["trt_timing_cache_enable"] is True
    assert opts["trt_timing_cache_path"] == str(tmp_path / "ort_trt" / "timing")
    assert opts["device_id"] == 0
    assert not any(k.startswith("trt_profile") for k in opts)


def test_caches_can_be_turned_off(tmp_path: Path) -> None:
    opts = trt_provider_options(
        OrtTrtSettings(workspace=tmp_path, engine_cache=False, timing_cache=False)
    )
    assert not any("cache" in k for k in opts)


def test_fp16_from_fp32_graph_sets_flag(tmp_path: Path) -> None:
    opts = trt_provider_options(OrtTrtSettings(workspace=tmp_path, precision="fp16"))
    assert opts["trt_fp16_enable"] is True
    assert "trt_int8_enable" not in opts


def test_fp16_graph_keeps_strong_typing_unless_legacy(tmp_path: Path) -> None:
    strong = trt_provider_options(
        OrtTrtSettings(workspace=tmp_path, precision="fp16", graph="fp16")
    )
    assert "trt_fp16_enable" not in strong
    assert strong["trt_engine_cache_prefix"] == "fp16_fp16"
    legacy = trt_provider_options(
        OrtTrtSettings(workspace=tmp_path, precision="fp16", graph="fp16", legacy_weak_typing=True)
    )
    assert legacy["trt_fp16_enable"] is True


def test_int8_from_ort_table_resolves_name_in_engine_cache_folder(tmp_path: Path) -> None:
    table = tmp_path / "calibration" / "calibration.flatbuffers"
    s = OrtTrtSettings(workspace=tmp_path, precision="int8", calibration_table=table)
    opts = trt_provider_options(s)
    assert opts["trt_int8_enable"] is True
    assert opts["trt_int8_calibration_table_name"] == "calibration.flatbuffers"
    assert opts["trt_int8_use_native_calibration_table"] is False
    # ORT joins engine cache path + table name, so together they must name the table file.
    assert Path(opts["trt_engine_cache_path"]) / opts["trt_int8_calibration_table_name"] == table
    assert cache_dirs(s)["engines"] == table.parent


def test_int8_native_table(tmp_path: Path) -> None:
    table = tmp_path / "trt_calibration.cache"
    opts = trt_provider_options(
        OrtTrtSettings(
            workspace=tmp_path,
            precision="int8",
            calibration_table=table,
            native_calibration_table=True,
            engine_cache=False,
        )
    )
    assert opts["trt_int8_use_native_calibration_table"] is True
    assert opts["trt_int8_calibration_table_name"] == "trt_calibration.cache"
    # Even without engine caching the path is needed: the table name is resolved inside it.
    assert opts["trt_engine_cache_path"] == str(tmp_path)
    assert "trt_engine_cache_enable" not in opts


def test_table_format_mismatches_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not ONNX Runtime's calibration\.flatbuffers"):
        trt_provider_options(
            OrtTrtSettings(
                workspace=tmp_path,
                precision="int8",
                calibration_table=tmp_path / "calibration.cache",
            )
        )
    with pytest.raises(UserError, match="not a TensorRT-native cache"):
        trt_provider_options(
            OrtTrtSettings(
                workspace=tmp_path,
                precision="int8",
                calibration_table=tmp_path / "calibration.flatbuffers",
                native_calibration_table=True,
            )
        )


def test_int8_fp32_graph_without_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs a calibration table"):
        trt_provider_options(OrtTrtSettings(workspace=tmp_path, precision="int8"))


def test_qdq_graph_gets_no_calibration_options(tmp_path: Path) -> None:
    opts = trt_provider_options(OrtTrtSettings(workspace=tmp_path, precision="int8", graph="qdq"))
    assert not any("calibration" in k for k in opts)
    assert "trt_int8_enable" not in opts  # strong typing: scales come from the graph
    legacy = trt_provider_options(
        OrtTrtSettings(workspace=tmp_path, precision="int8", graph="qdq", legacy_weak_typing=True)
    )
    assert legacy["trt_int8_enable"] is True
    assert not any("calibration" in k for k in legacy)


def test_qdq_graph_with_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Q/DQ graph must not get a calibration table"):
        trt_provider_options(
            OrtTrtSettings(
                workspace=tmp_path,
                precision="int8",
                graph="qdq",
                calibration_table=tmp_path / "calibration.flatbuffers",
            )
        )


@pytest.mark.parametrize(
    ("precision", "graph", "table", "message"),
    [
        ("fp32", "qdq", None, "Q/DQ graph runs as INT8"),
        ("int8", "fp16", None, "FP16 graph runs as FP16"),
        ("fp32", "fp32", "calibration.flatbuffers", "only applies to INT8"),
        ("int4", "fp32", None, "unknown precision"),
        ("fp32", "bf16", None, "unknown graph kind"),
    ],
)
def test_impossible_combinations(
    tmp_path: Path, precision: str, graph: str, table: str | None, message: str
) -> None:
    s = OrtTrtSettings(
        workspace=tmp_path,
        precision=precision,
        graph=graph,
        calibration_table=tmp_path / table if table else None,
    )
    with pytest.raises(UserError, match=message):
        trt_provider_options(s)


def test_workspace_and_opt_level(tmp_path: Path) -> None:
    opts = trt_provider_options(
        OrtTrtSettings(workspace=tmp_path, max_workspace_bytes=2 << 30, opt_level=5)
    )
    assert opts["trt_max_workspace_size"] == 2 << 30
    assert opts["trt_builder_optimization_level"] == 5
    with pytest.raises(UserError, match=r"0\.\.5"):
        trt_provider_options(OrtTrtSettings(workspace=tmp_path, opt_level=6))
    with pytest.raises(UserError, match="larger than 0"):
        trt_provider_options(OrtTrtSettings(workspace=tmp_path, max_workspace_bytes=0))


def test_profile_strings_all_three_and_multiple_inputs() -> None:
    opts = profile_shape_options(
        {
            "images": ((1, 3, 416, 416), (4, 3, 416, 416), (8, 3, 416, 416)),
            "scale": ((1, 2), (4, 2), (8, 2)),
        }
    )
    assert opts == {
        "trt_profile_min_shapes": "images:1x3x416x416,scale:1x2",
        "trt_profile_opt_shapes": "images:4x3x416x416,scale:4x2",
        "trt_profile_max_shapes": "images:8x3x416x416,scale:8x2",
    }
    assert profile_shape_options({}) == {}


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((1, 3), (2, 3)), "three shapes"),
        (((4, 3), (2, 3), (8, 3)), "min <= opt <= max"),
        (((1, 3), (2, 3, 1), (8, 3)), "same rank"),
        (((0, 3), (2, 3), (8, 3)), "positive"),
    ],
)
def test_bad_profiles_are_refused(tmp_path: Path, shapes: tuple, message: str) -> None:
    with pytest.raises(UserError, match=message):
        trt_provider_options(OrtTrtSettings(workspace=tmp_path, profiles={"images": shapes}))


def test_profile_from_real_model_input(tmp_path: Path) -> None:
    if not YOLOX.is_file():
        pytest.skip("YOLOX-Nano model not in shared assets")
    import onnx

    graph = onnx.load(str(YOLOX), load_external_data=False).graph
    inp = graph.input[0]
    dims = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
    opts = trt_provider_options(
        OrtTrtSettings(workspace=tmp_path, profiles={inp.name: (dims, dims, dims)})
    )
    assert opts["trt_profile_opt_shapes"] == "images:1x3x416x416"


def test_provider_list_order_and_cuda_options(tmp_path: Path) -> None:
    s = OrtTrtSettings(workspace=tmp_path, precision="fp16", device_id=1)
    providers = ort_trt_providers(s, {"use_tf32": 0})
    assert [p if isinstance(p, str) else p[0] for p in providers] == [TRT_EP, CUDA_EP, CPU_EP]
    assert providers[0][1]["device_id"] == 1 and providers[0][1]["trt_fp16_enable"] is True
    assert providers[1][1] == {"device_id": 1, "use_tf32": 0}


def test_options_are_accepted_names_for_this_onnxruntime(tmp_path: Path) -> None:
    """Every key we emit must be a TensorRT EP option name ORT knows (catches typos).

    The installed wheel cannot load the TensorRT EP here (no libnvinfer), so the names are checked
    against the documented list in shared/docs/TENSORRT.md section 8 instead of a live session.
    """
    documented = {
        "device_id", "trt_fp16_enable", "trt_int8_enable", "trt_int8_calibration_table_name",
        "trt_int8_use_native_calibration_table", "trt_engine_cache_enable",
        "trt_engine_cache_path", "trt_engine_cache_prefix", "trt_timing_cache_enable",
        "trt_timing_cache_path", "trt_max_workspace_size", "trt_builder_optimization_level",
        "trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes",
    }  # fmt: skip
    s = OrtTrtSettings(
        workspace=tmp_path,
        precision="int8",
        calibration_table=tmp_path / "calibration.flatbuffers",
        max_workspace_bytes=1 << 30,
        opt_level=3,
        profiles={"images": ((1, 3, 8, 8), (1, 3, 8, 8), (2, 3, 8, 8))},
    )
    assert set(trt_provider_options(s)) <= documented
    assert TRT_EP in ort.get_all_providers()


def test_cuda_runners_keep_fp32_exact_unless_tf32_is_asked(tmp_path: Path) -> None:
    """TF32 off by default on the CUDA provider (scores within 1e-5 of the CPU on an H100),
    on with the `tf32` option; the provider option keys are ONNX Runtime's own."""
    from app.backends.factory import make_runner, runner_for_pipeline
    from app.core.model.inspection import inspect_model

    exact = make_runner("ort-cuda", YOLOX)
    fast = make_runner("ort-cuda", YOLOX, options={"tf32": True})
    assert exact.provider_options["use_tf32"] == "0" and fast.provider_options["use_tf32"] == "1"
    assert exact.io_binding and "tf32" not in fast.provider_options
    cpu = make_runner("ort-cpu", YOLOX, options={"tf32": True})
    assert cpu.provider_options == {}  # nothing CUDA-only reaches the CPU provider
    runner, fused = runner_for_pipeline("ort-cuda", YOLOX, inspect_model(YOLOX), cache_dir=tmp_path)
    assert fused and runner.cuda_graph and runner.provider_options["use_tf32"] == "0"
    # FP16 graphs get no TF32 setting: use_tf32=0 there cost cuDNN its tensor-core FP16 plans
    from app.core.quant.quantize import make_fp16

    fp16 = tmp_path / "fp16.onnx"
    make_fp16(YOLOX, fp16)
    assert "use_tf32" not in make_runner("ort-cuda", fp16).provider_options
    runner16, _ = runner_for_pipeline("ort-cuda", fp16, inspect_model(YOLOX), cache_dir=tmp_path)
    assert "use_tf32" not in runner16.provider_options
