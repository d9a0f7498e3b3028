"""`int8-studio build`: the exit-2 sentence on this machine (for real), --print-trtexec, and the
command's table, JSON, reuse and Ctrl-C with the recording TensorRT stand-in (plumbing only)."""

from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path

import pytest

from app.backends.registry import status_of
from app.backends.tensorrt.status import tensorrt_status
from app.cli import cmd_build
from app.cli.main import build_parser, main
from app.core.errors import Cancelled, UserError
from app.core.model.workspace import Workspace
from tests.assets import needs_assets
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn
from tests.backends.tensorrt.workspace_fixture import make_workspace

pytestmark = needs_assets


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("build"))


def _args(ws: Workspace, *extra: str):
    return build_parser().parse_args(["build", "--workspace", str(ws.root), *extra])


@pytest.mark.skipif(tensorrt_status().available, reason="TensorRT is installed here")
def test_without_tensorrt_exit_2_with_one_sentence_saying_how(ws, capsys) -> None:
    assert main(["build", "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot build TensorRT engines on this machine" in err
    assert "pip install tensorrt-cu12 --extra-index-url https://pypi.nvidia.com" in err
    assert not (ws.root / "engines").exists() or not list((ws.root / "engines").glob("*.engine"))


@pytest.mark.skipif(status_of("ort-tensorrt").available, reason="the ORT provider loads here")
def test_ort_provider_route_without_tensorrt_exit_2(ws, capsys) -> None:
    assert main(["build", "--workspace", str(ws.root), "--engine", "ort-tensorrt"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"int8-studio: error: cannot build with ONNX Runtime's TensorRT provider here: " \
                  f"{status_of('ort-tensorrt').reason}"  # fmt: skip


def _trtexec(capsys, ws, *extra: str) -> dict[str, list[str]]:
    assert main(["build", "--workspace", str(ws.root), "--print-trtexec", *extra]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {lines[i].split(":")[0][2:]: shlex.split(lines[i + 1]) for i in range(0, len(lines), 2)}


def test_print_trtexec_matches_the_settings_per_generation(ws, capsys) -> None:
    common = ["--variants", "int8,fp16,fp32", "--workspace-size", "2048", "--opt-level", "5",
              "--timing-cache", "t.cache", "--version-compatible"]  # fmt: skip
    v10 = _trtexec(capsys, ws, *common)
    assert v10["int8"][:2] == ["trtexec", f"--onnx={ws.variant_path('int8-trt')}"]
    for variant in ("int8", "fp16", "fp32"):
        cmd = v10[variant]
        assert {
            "--versionCompatible",
            "--memPoolSize=workspace:2048M",
            "--skipInference",
            "--builderOptimizationLevel=5",
            "--timingCacheFile=t.cache",
        } <= set(cmd)
        assert ("--stronglyTyped" in cmd) == (variant != "fp32")
        assert "--fp16" not in cmd and "--int8" not in cmd  # precision comes from the graphs
    args = _args(ws, "--print-trtexec", "--variants", "int8")
    assert cmd_build.execute(args, trt=RecordingTrtStandIn("11.4.0.106")) == 0  # installed: 11
    assert "TensorRT 11" in capsys.readouterr().out
    v11 = _trtexec(capsys, ws, *common, "--trt-major", "11")
    assert not any("--stronglyTyped" in c for c in v11.values())  # 11: always strongly typed
    calib = _trtexec(capsys, ws, "--variants", "int8", "--int8-source", "calibrator",
                     "--shapes", "input_1:1x32x32x3,4x32x32x3,8x32x32x3")["int8"]  # fmt: skip
    assert "--int8" in calib and any(a.startswith("--calib=") for a in calib)
    assert {"--minShapes=input_1:1x32x32x3", "--optShapes=input_1:4x32x32x3",
            "--maxShapes=input_1:8x32x32x3"} <= set(calib)  # fmt: skip
    assert main(["build", "--workspace", str(ws.root), "--print-trtexec", "--trt-major", "11",
                 "--variants", "int8", "--int8-source", "calibrator"]) == 2  # fmt: skip


@pytest.mark.parametrize("version", ["10.16.1.11", "11.4.0.106"])
def test_build_table_json_and_reuse_with_stand_in(ws, capsys, tmp_path, version) -> None:
    out = tmp_path / "engines.json"
    args = _args(ws, "--variants", "int8,fp16", "--json", str(out), "--opt-level", "2")
    trt, cudart = RecordingTrtStandIn(version), RecordingCudartStandIn()
    assert cmd_build.execute(args, trt=trt, cudart=cudart) == 0
    text = capsys.readouterr().out
    assert f"TensorRT {version} on Stand-in GPU (sm 9.0)" in text and "built" in text
    data = json.loads(out.read_text())
    assert [e["variant"] for e in data["engines"]] == ["int8", "fp16"]
    assert all(Path(e["engine"]).is_file() and Path(e["record"]).is_file() for e in data["engines"])
    assert cmd_build.execute(args, trt=RecordingTrtStandIn(version), cudart=cudart) == 0
    assert [e["state"] for e in json.loads(out.read_text())["engines"]] == ["reused", "reused"]


def test_ctrl_c_cancels_the_build_and_keeps_nothing(ws) -> None:
    trt = RecordingTrtStandIn("10.16.1.11")
    plain, sent = trt._dispatch, []

    def interrupt_on_first_step(obj, base, method, *args):
        if method == "step_complete" and not sent:  # one Ctrl-C (a second one interrupts)
            sent.append(os.kill(os.getpid(), signal.SIGINT))  # handled on this thread
        return plain(obj, base, method, *args)

    trt._dispatch = interrupt_on_first_step
    before = set((ws.root / "engines").glob("*")) if (ws.root / "engines").exists() else set()
    with pytest.raises(Cancelled):
        cmd_build.execute(_args(ws, "--variants", "fp32", "--opt-level", "1"), trt=trt,
                          cudart=RecordingCudartStandIn())  # fmt: skip
    assert set((ws.root / "engines").glob("*")) == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_shapes_argument() -> None:
    assert cmd_build.parse_shapes(["x:1x3,2x3,4x3"]) == {"x": ((1, 3), (2, 3), (4, 3))}
    assert cmd_build.parse_shapes(["x:1x3x2x3x4x3"]) == {"x": ((1, 3), (2, 3), (4, 3))}
    for bad in ("x:1x3,2x3", "1x3,2x3,4x3", "x:1xAx3"):
        with pytest.raises(UserError, match="NAME:MIN,OPT,MAX"):
            cmd_build.parse_shapes([bad])
