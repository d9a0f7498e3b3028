"""workspace_engines: one build call for the CLI and the panel (one progress bar, refusal before
any build), the engines listed with their records, and the engine a variant runs as on
`tensorrt`. TensorRT is the recording stand-in (argument plumbing only; it builds nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.backends.tensorrt.engine_header import read_record
from app.backends.tensorrt.engines import EngineOptions
from app.backends.tensorrt.runtime import TensorRTRunner
from app.backends.tensorrt.workspace_engines import (
    build_engines,
    built_variants,
    engine_for_variant,
    engine_runner_factory,
    list_engines,
)
from app.core.errors import Cancelled, CancelToken, UserError
from app.core.model.workspace import Workspace
from tests.assets import needs_assets
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn, names
from tests.backends.tensorrt.workspace_fixture import make_workspace

pytestmark = needs_assets
V11 = "11.4.0.106"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("listing"))


def test_build_list_pick_and_open(ws: Workspace) -> None:
    trt, cudart = RecordingTrtStandIn(V11), RecordingCudartStandIn()
    seen: list[tuple[float, str]] = []
    built = build_engines(ws, ["int8", "fp16"], EngineOptions(), trt=trt, cudart=cudart,
                          progress=lambda f, m: seen.append((f, m)))  # fmt: skip
    assert (built["trt_version"], built["gpu"], built["capability"]) == (V11, "Stand-in GPU", "9.0")
    assert [e["state"] for e in built["engines"]] == ["built", "built"]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert ("int8: parsing ONNX" in {m for _, m in seen}) and (0.5, "fp16: parsing ONNX") in seen
    assert max(f for f, m in seen if m.startswith("int8")) == 0.5  # its half of the bar

    listed = {e["variant"]: e for e in list_engines(ws)}
    assert set(listed) == {"int8", "fp16"} and built_variants(ws) == ["fp16", "int8"]
    for summary in built["engines"]:
        entry = listed[summary["variant"]]
        record = read_record(entry["engine"])
        assert entry["ok"] and entry["engine"] == summary["engine"]
        assert entry["bytes"] == record.engine_size == summary["bytes"]
        assert entry["build_seconds"] == record.build_seconds == summary["build_seconds"]
        assert (entry["trt_version"], entry["gpu"]) == (V11, "Stand-in GPU (sm 9.0)")
        assert entry["shapes"] == "input_1 1x32x32x3"  # the default batch-1 profile
    assert (listed["int8"]["precision"], listed["int8"]["graph"]) == ("int8", "qdq")

    int8 = Path(listed["int8"]["engine"])
    assert engine_for_variant(ws, "int8") == int8 == engine_for_variant(ws, "int8-trt")
    with pytest.raises(UserError, match=r"no TensorRT engine of 'fp32'.*--variants fp32"):
        engine_for_variant(ws, "fp32")
    with pytest.raises(UserError, match="'int8-mixed' has no TensorRT engine"):
        engine_for_variant(ws, "int8-mixed")

    asked: list[tuple[str, Path]] = []  # a recording runner factory: what each backend gets
    factory = engine_runner_factory(ws, lambda backend, path: asked.append((backend, path)))
    factory("tensorrt", ws.variant_path("int8-trt"))
    factory("ort-cpu", ws.variant_path("int8-trt"))
    assert asked == [("tensorrt", int8), ("ort-cpu", ws.variant_path("int8-trt"))]
    with pytest.raises(UserError, match="no TensorRT engine of 'fp32'"):
        factory("tensorrt", Path(ws.spec().path))  # the user's model is fp32

    runner = TensorRTRunner(int8, trt=RecordingTrtStandIn(V11), cudart=RecordingCudartStandIn())
    with runner:  # the picked engine passes its record check and is deserialized
        assert runner.active_provider == f"TensorRT {V11} on Stand-in GPU"
    with pytest.raises(UserError, match="is an ONNX graph; the tensorrt backend runs engines"):
        TensorRTRunner(ws.variant_path("int8-trt"))

    int8.write_bytes(int8.read_bytes()[:-3])  # truncated: listed as such, not picked
    entry = {e["variant"]: e for e in list_engines(ws)}["int8"]
    assert not entry["ok"] and "truncated" in entry["problem"]
    with pytest.raises(UserError, match=r"no TensorRT engine of 'int8'.*truncated"):
        engine_for_variant(ws, "int8")


def test_refused_or_cancelled_before_any_build(ws: Workspace) -> None:
    trt = RecordingTrtStandIn(V11)
    with pytest.raises(UserError, match="TensorRT 11 removed calibrator INT8"):
        build_engines(ws, ["fp16", "int8"], EngineOptions(int8_source="calibrator", opt_level=1),
                      trt=trt, cudart=RecordingCudartStandIn())  # fmt: skip
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        build_engines(ws, ["fp16"], EngineOptions(opt_level=1), cancel=token, trt=trt,
                      cudart=RecordingCudartStandIn())  # fmt: skip
    assert names(trt._calls, "create_network") == []


def test_provider_route_record_is_listed(ws: Workspace) -> None:
    """What the `ort-tensorrt` route records after its session (the session itself needs the
    provider, absent here) is what the engines list shows for it."""
    import onnxruntime

    from app.backends.tensorrt.engines import plan_job
    from app.backends.tensorrt.ort_route import ORT_TRT_MAJOR, _record
    from app.core.atomic import write_json

    job = plan_job(ws, "fp16", EngineOptions(), ORT_TRT_MAJOR)
    cache = ws.path("ort_trt", "engines")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "fp16_fp16_123.engine").write_bytes(b"x" * 1500)  # the provider's cache file
    summary = {"engine": str(cache), "seconds": 2.5}
    write_json(ws.path("ort_trt", "records", "fp16.json"), _record(job, summary, onnxruntime))
    entry = next(e for e in list_engines(ws) if e["kind"] == "ort-tensorrt")
    assert (entry["variant"], entry["precision"], entry["graph"]) == ("fp16", "fp16", "fp16")
    assert entry["trt_version"] == f"ONNX Runtime {onnxruntime.__version__} provider"
    assert (entry["bytes"], entry["build_seconds"], entry["ok"]) == (1500, 2.5, True)
    assert entry["shapes"] == "input_1 1x32x32x3"
