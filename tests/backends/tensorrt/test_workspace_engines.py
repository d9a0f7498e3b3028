"""Engines of a real workspace: graph and route per variant and generation, keyed files, records,
reuse, rebuild of damaged or foreign engines, cancel. TensorRT is the recording stand-in (argument
plumbing only; the stand-in itself is checked against the real bindings in real_api/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.backends.tensorrt.engine_header import read_record, side_path
from app.backends.tensorrt.engines import EngineOptions, ensure_engine, plan_job
from app.core.errors import Cancelled, CancelToken, UserError
from app.core.model.workspace import Workspace
from tests.assets import needs_assets
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn, names
from tests.backends.tensorrt.workspace_fixture import CALIBRATION_IMAGES, make_workspace

pytestmark = needs_assets
V10, V11 = "10.16.1.11", "11.4.0.106"
GPU = ("Stand-in GPU", "9.0")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("engines"))


def _ensure(ws: Workspace, variant: str, version: str, options: EngineOptions, **kw):
    trt, cudart = RecordingTrtStandIn(version), RecordingCudartStandIn()
    job = plan_job(ws, variant, options, int(version.split(".")[0]))
    summary = ensure_engine(ws, job, trt_version=version, gpu=GPU[0], capability=GPU[1],
                            trt=trt, cudart=cudart, **kw)  # fmt: skip
    return job, summary, trt


CASES = [  # (TensorRT version, variant, options, graph file, route)
    (V10, "int8", EngineOptions(), "int8-trt.onnx", "strongly typed Q/DQ"),
    (V10, "int8", EngineOptions(int8_source="calibrator", opt_level=2), "resnet8_cifar10.onnx",
     "calibrator"),
    (V10, "fp16", EngineOptions(), "fp16.onnx", "strongly typed"),
    (V10, "fp32", EngineOptions(version_compatible=True), "resnet8_cifar10.onnx", "default"),
    (V11, "int8", EngineOptions(), "int8-trt.onnx", "strongly typed Q/DQ"),
    (V11, "fp16", EngineOptions(workspace_mb=512), "fp16.onnx", "strongly typed"),
]  # fmt: skip


@pytest.mark.parametrize(("version", "variant", "options", "graph", "route"), CASES)
def test_build_record_then_reuse(ws, version, variant, options, graph, route) -> None:
    job, first, trt = _ensure(ws, variant, version, options)
    assert (Path(job.graph).name, first["route"], first["state"]) == (graph, route, "built")
    engine = Path(first["engine"])
    assert engine.parent == ws.root / "engines" and engine.name.startswith(
        f"{variant}-trt{version}-"
    )
    record = read_record(engine)
    assert record is not None and record.trt_version == version and record.gpu_name == GPU[0]
    assert record.settings == json.loads(json.dumps(job.settings.identity()))
    assert record.settings["profiles"] == {"input_1": [[1, 32, 32, 3]] * 3}  # dynamic batch -> 1
    strongly = ("STRONGLY_TYPED",) if route.startswith("strongly") and version == V10 else ()
    assert names(trt._calls, "create_network")[0] == (
        sum(1 << int(getattr(trt.NetworkDefinitionCreationFlag, f)) for f in strongly),
    )
    _, again, trt2 = _ensure(ws, variant, version, options)
    assert again["state"] == "reused" and again["engine"] == first["engine"]
    assert trt2._calls == []  # TensorRT not touched for a valid engine


def test_calibrator_reads_the_calibration_images_then_its_cache(ws: Workspace) -> None:
    options = EngineOptions(int8_source="calibrator", calibrator="minmax", opt_level=1)
    job, summary, trt = _ensure(ws, "int8", V10, options)
    assert summary["calibration_batches"] == CALIBRATION_IMAGES  # one photo per batch
    assert names(trt._calls, "set_flag") == [("INT8",)]
    cache = ws.root / "engines" / f"calib-{job.calibration.name}-minmax-trt10.cache"
    assert cache.read_bytes().startswith(b"TRT-")
    other = EngineOptions(int8_source="calibrator", calibrator="minmax", opt_level=0)
    _, summary, trt = _ensure(ws, "int8", V10, other)  # another engine, same calibration
    assert summary["state"] == "built" and summary["calibration_batches"] == 0  # cache read


def test_damaged_or_foreign_engines_are_rebuilt(ws: Workspace) -> None:
    options = EngineOptions(opt_level=5)
    _, first, _ = _ensure(ws, "fp16", V10, options)
    engine = Path(first["engine"])
    engine.write_bytes(engine.read_bytes()[:-1] + b"!")  # edited in place
    _, rebuilt, trt = _ensure(ws, "fp16", V10, options)
    assert rebuilt["state"] == "rebuilt" and "altered" in rebuilt["reason"]
    assert names(trt._calls, "create_network")
    record = json.loads(side_path(engine).read_text())
    record["model_sha256"] = "f" * 64  # a record copied from another model's engine
    side_path(engine).write_text(json.dumps(record))
    _, rebuilt, _ = _ensure(ws, "fp16", V10, options)
    assert rebuilt["state"] == "rebuilt" and "another model" in rebuilt["reason"]
    _, again, _ = _ensure(ws, "fp16", V10, options)
    assert again["state"] == "reused"


def test_other_version_or_gpu_gets_its_own_engine(ws: Workspace) -> None:
    options = EngineOptions(opt_level=4)
    _, a, _ = _ensure(ws, "int8", "10.16.1.11", options)
    _, b, _ = _ensure(ws, "int8", "10.15.0.1", options)
    assert a["engine"] != b["engine"] and b["state"] == "built"
    assert Path(a["engine"]).is_file()  # the other version's engine is left alone


def test_cancelled_rebuild_leaves_no_engine_and_no_record(ws: Workspace) -> None:
    options = EngineOptions(opt_level=3, workspace_mb=256)
    _, first, _ = _ensure(ws, "int8", V11, options)
    engine = Path(first["engine"])
    engine.write_bytes(b"half")
    token = CancelToken()
    with pytest.raises(Cancelled):
        _ensure(ws, "int8", V11, options, cancel=token,
                progress=lambda f, m: token.cancel() if f >= 0.5 else None)  # fmt: skip
    assert not engine.exists() and not side_path(engine).exists()


def test_what_a_generation_cannot_build_is_refused_with_the_way_out(ws, tmp_path) -> None:
    with pytest.raises(UserError, match="TensorRT 11 removed calibrator INT8"):
        plan_job(ws, "int8", EngineOptions(int8_source="calibrator"), 11)
    bare = Workspace.for_model(ws.spec(), tmp_path / "bare")  # no quantized graphs
    with pytest.raises(UserError, match="--precision fp16"):
        plan_job(bare, "fp16", EngineOptions(), 11)
    assert plan_job(bare, "fp16", EngineOptions(), 10).graph_label == "fp32 graph + FP16 flag"
    with pytest.raises(UserError, match="--target tensorrt"):
        plan_job(bare, "int8", EngineOptions(int8_source="qdq"), 10)
    with pytest.raises(UserError, match="unknown variant"):
        plan_job(ws, "int4", EngineOptions(), 10)


def test_provider_sessions_find_builds_engines_keyed_by_graph_content(ws, tmp_path) -> None:
    """`build`'s ort-tensorrt route and every later ort-tensorrt session on the same graph share
    one engine folder, named after the graph's content: ONNX Runtime's provider names cached
    engines after file and node names only, so a re-quantized graph must not find the old
    engine. Options only: the provider itself cannot load here."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from app.backends.factory import make_runner, runner_for_pipeline
    from app.backends.ort_trt_options import cache_dirs, runner_trt_options, stale_engine_folders
    from app.backends.tensorrt.ort_route import ORT_TRT_MAJOR, live_view_graph, ort_settings

    job = plan_job(ws, "int8", EngineOptions(), ORT_TRT_MAJOR)
    built = cache_dirs(ort_settings(ws, job))
    assert built["engines"].parent == ws.root / "ort_trt" / "engines"
    opts = make_runner("ort-tensorrt", job.graph).provider_options
    assert opts["trt_engine_cache_path"] == str(built["engines"])
    assert opts["trt_timing_cache_path"] == str(built["timing"])
    assert opts["trt_engine_cache_enable"] is True and opts["trt_engine_cache_prefix"] == "qdq_int8"
    assert "trt_int8_enable" not in opts  # strong typing: the graph's Q/DQ decide
    # the live view's fused copy keeps its engines in the variant's workspace too
    fused, _ = runner_for_pipeline("ort-tensorrt", job.graph, ws.spec(), cache_dir=tmp_path / "f")
    cached = Path(fused.provider_options["trt_engine_cache_path"])
    assert cached.parent == built["engines"].parent and cached.name.startswith("int8-trt.fused-")
    # ... which `build` prebuilds: the folder it fills for that copy is the one Live opens
    prebuilt = runner_trt_options(live_view_graph(ws, job), ws.root)["trt_engine_cache_path"]
    assert prebuilt == str(cached)
    # a calibrator build of the FP32 graph is nothing a runner opens: no copy to prebuild
    calibrator = plan_job(ws, "int8", EngineOptions(int8_source="calibrator"), ORT_TRT_MAJOR)
    assert live_view_graph(ws, calibrator) is None

    # the same variant re-quantized (one scale changed, same names): another folder
    other = tmp_path / "ws"
    (other / "variants").mkdir(parents=True)
    shutil.copy(ws.root / "spec.json", other / "spec.json")
    model = onnx.load(str(job.graph))
    scale = next(i for i in model.graph.initializer if i.name.endswith("_scale"))
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 1.01, scale.name))
    onnx.save(model, str(other / "variants" / "int8-trt.onnx"))
    moved = make_runner("ort-tensorrt", other / "variants" / "int8-trt.onnx").provider_options
    new = Path(moved["trt_engine_cache_path"])
    assert new.parent == other / "ort_trt" / "engines" and new.name != built["engines"].name
    old = new.parent / built["engines"].name
    old.mkdir(parents=True)
    new.mkdir()
    live = new.parent / cached.name  # this variant's fused copy: another graph, not stale
    live.mkdir()
    assert stale_engine_folders(new) == [old]
    # a fused copy is named by its content key already: the variant's older copies are stale
    older_copy = new.parent / f"int8-trt.fused-{'0' * 16}-{'a' * 12}"
    older_copy.mkdir()
    assert stale_engine_folders(live) == [older_copy]


def test_provider_sessions_ask_for_the_shape_profiles_build_used(ws) -> None:
    """ResNet-8's input has a dynamic batch, so `build` gives the provider a batch-1 profile
    (`default_profiles`); a later session on the same graph that gave none would not be asking
    for the engine `build` made. Options only: the provider itself cannot load here."""
    from app.backends.factory import make_runner
    from app.backends.ort_trt_options import (
        PROFILES_FILE,
        cache_dirs,
        record_profiles,
        trt_provider_options,
    )
    from app.backends.tensorrt.ort_route import ORT_TRT_MAJOR, ort_settings

    keys = ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")
    job = plan_job(ws, "int8", EngineOptions(), ORT_TRT_MAJOR)
    settings = ort_settings(ws, job)
    built = trt_provider_options(settings)
    assert built["trt_profile_opt_shapes"] == "input_1:1x32x32x3"
    assert not set(keys) & set(make_runner("ort-tensorrt", job.graph).provider_options)
    path = record_profiles(settings)  # what `build_with_provider` does once the engine is built
    try:
        assert path == cache_dirs(settings)["engines"] / PROFILES_FILE
        later = make_runner("ort-tensorrt", job.graph).provider_options
        assert {k: later[k] for k in keys} == {k: built[k] for k in keys}
        # a damaged record: the session gives no profiles, as before, and still opens
        path.write_text("{", encoding="utf-8")
        assert not set(keys) & set(make_runner("ort-tensorrt", job.graph).provider_options)
    finally:
        path.unlink(missing_ok=True)
    # a calibration-table build keeps its engines with the table: nothing to record
    calibrator = plan_job(ws, "int8", EngineOptions(int8_source="calibrator"), ORT_TRT_MAJOR)
    assert record_profiles(ort_settings(ws, calibrator)) is None
