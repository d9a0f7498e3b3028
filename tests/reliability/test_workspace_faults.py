"""Reliability (issue 18): a workspace whose model file changed, whose spec was hand-edited,
that cannot be written, that holds a linked variant, or that killed jobs left `.part` files in."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

import app.core.model.files as files_mod
import app.core.model.workspace as workspace_mod
from app.core.errors import UserError
from app.core.model.inspection import inspect_model
from app.core.model.workspace import LEFTOVER_AGE_S, Workspace
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.quantize import quantize
from tests.conftest import IMAGES, RESNET8, needs_assets
from tests.reliability.helpers import (
    assert_one_line_error,
    cli,
    copy_images,
    copy_model_folder,
    deep_json,
    run_as_nobody,
    temp_leftovers,
)

pytestmark = needs_assets
CIFAR = IMAGES / "cifar10-test500"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    for cls in ("cat", "ship"):
        copy_images(sorted((CIFAR / cls).glob("*.jpg"))[:3], root / cls)
    return root


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A scratch folder that uid 65534 can reach (pytest's tmp_path is under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="int8-reliability-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ws(tmp_path, images) -> Workspace:
    """A calibrated ResNet-8 workspace with an INT8 variant, from a writable copy of the model."""
    model = copy_model_folder(RESNET8, tmp_path / "model")
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, images, method="minmax")
    quantize(ws, precisions=["int8"])
    return ws


def _reexport(model_file: Path) -> None:
    """The same file name, other weights (a model re-exported in place)."""
    model = onnx.load(str(model_file))
    init = next(i for i in model.graph.initializer if numpy_helper.to_array(i).ndim == 4)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 2.0, init.name))
    onnx.save(model, str(model_file))


# ---------------------------------------------------------------------------------------------
# fault 1: the model file changed at its recorded path
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["bench", "--variants", "fp32", "--iterations", "2", "--warmup", "0"],
        ["evaluate", "--variants", "fp32,int8"],
        ["quantize", "--precision", "fp16"],
    ],
)
def test_a_model_changed_in_place_is_refused_naming_it(ws, images, command):
    model_file = Path(ws.spec().path)
    _reexport(model_file)
    extra = ["--images", str(images)] if command[0] == "evaluate" else []
    proc = cli(*command, "--workspace", str(ws.root), *extra)
    assert_one_line_error(proc, str(model_file), "has changed", "recalibrate")
    assert not ws.variant_path("fp16").exists()
    assert not (ws.root / "results").exists() or not list((ws.root / "results").iterdir())


def test_the_model_hash_is_memoised_and_a_touch_alone_is_no_change(ws):
    model_file = Path(ws.spec().path)
    st = model_file.stat()
    key = (str(model_file), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    assert files_mod._HASHES[key] == ws.spec().sha256
    os.utime(model_file, (time.time() + 5, time.time() + 5))  # same bytes, newer mtime
    assert ws.spec().sha256  # re-hashed once, still the same model
    _reexport(model_file)
    with pytest.raises(UserError, match="has changed since the workspace"):
        ws.spec()


# ---------------------------------------------------------------------------------------------
# fault 7: hand-edited spec.json, nested ranges.json, a workspace that cannot be written
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["preprocess"].update(size=[100000, 100000]), "between 8 and 8192"),
        (lambda d: d["postprocess"].update(decoder="yolo_v99"), "unknown decoder 'yolo_v99'"),
    ],
    ids=["huge-size", "unknown-decoder"],
)
def test_a_hand_edited_spec_is_one_line_naming_it(ws, images, edit, says):
    data = json.loads(ws.spec_path.read_text())
    edit(data)
    ws.spec_path.write_text(json.dumps(data))
    for command in (
        ["bench", "--variants", "fp32", "--iterations", "2"],
        ["evaluate", "--images", str(images), "--variants", "fp32"],
    ):
        proc = cli(*command, "--workspace", str(ws.root))
        assert_one_line_error(proc, str(ws.spec_path), says)


def test_deeply_nested_ranges_with_a_matching_hash_is_one_line(ws):
    folder = latest_calibration(ws)
    ranges = folder / "ranges.json"
    ranges.write_text(deep_json())
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"]["ranges.json"] = workspace_mod.file_sha256(ranges)  # a matching record
    (folder / "meta.json").write_text(json.dumps(meta))
    ws.variant_path("int8").unlink()
    proc = cli("quantize", "--workspace", str(ws.root), "--precision", "int8")
    assert_one_line_error(proc, str(ranges), "nested too deeply", "calibrate")


def test_a_workspace_that_cannot_be_written_is_refused_before_the_work(images, open_tmp):
    """uid 65534 may read the workspace but not write it (as on a read-only disk): evaluate
    used to do all the work and then crash writing its report."""
    model = copy_model_folder(RESNET8, open_tmp / "model")
    ws = Workspace.for_model(inspect_model(model), open_tmp / "ws")
    readable = copy_images(sorted((CIFAR / "cat").glob("*.jpg"))[:3], open_tmp / "images")
    for p in [open_tmp, *open_tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    body = f"""
import io, contextlib
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = app.cli.main.main(["evaluate", "--workspace", {str(ws.root)!r}, "--images",
                              {str(readable)!r}, "--variants", "fp32"])
result = {{"code": code, "err": err.getvalue()}}
"""
    got = run_as_nobody(body)["result"]
    assert got["code"] == 2, got
    lines = got["err"].strip().splitlines()
    assert len(lines) == 1 and "evaluating" not in got["err"], got["err"]
    assert f"{ws.root}: cannot write in this workspace" in lines[0]
    assert not (ws.root / "results").exists()


# ---------------------------------------------------------------------------------------------
# fault 10: a read is not refused by the write rule
# ---------------------------------------------------------------------------------------------
def test_a_linked_variant_is_read_not_refused_as_a_write(ws, tmp_path):
    graph = ws.variant_path("int8")
    elsewhere = tmp_path / "elsewhere" / "int8.onnx"
    elsewhere.parent.mkdir()
    os.replace(graph, elsewhere)
    graph.symlink_to(elsewhere)
    assert ws.valid_variant("int8")
    assert ws.require_variant("int8") == ws.root / "variants" / "int8.onnx"
    proc = cli("bench", "--workspace", str(ws.root), "--variants", "int8", "--iterations", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refusing to write" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# fault 9: leftovers of killed jobs
# ---------------------------------------------------------------------------------------------
def test_leftovers_of_killed_jobs_are_cleaned_on_open_and_a_running_jobs_kept(ws):
    old = time.time() - LEFTOVER_AGE_S - 60
    dead = ws.root / "variants" / ".int8.onnx.k2j4x9ab.part"
    dead.write_bytes(b"half a graph")
    dead_dir = ws.root / "calibration" / ".0123456789abcdef.x1y2z3.part"
    dead_dir.mkdir()
    (dead_dir / "ranges.json").write_text("{}")
    for p in (dead, dead_dir / "ranges.json", dead_dir):
        os.utime(p, (old, old))
    running = ws.root / "variants" / ".fp16.onnx.a8b7c6d5.part"  # just started
    running.write_bytes(b"")
    Workspace.open(ws.root)
    assert not dead.exists() and not dead_dir.exists()
    assert temp_leftovers(ws.root) == ["variants/.fp16.onnx.a8b7c6d5.part"]


def test_a_killed_runs_video_part_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    gone = out / ".clip_annotated.mp4.999999999.part.mp4"  # no such PID
    gone.write_bytes(b"\0" * 100)
    alive = out / f".clip_annotated.mp4.{os.getppid()}.part.mp4"  # a running process's
    alive.write_bytes(b"\0" * 100)
    mine = out / ".notes.part"  # the user's own file: not ours to judge by age
    mine.write_text("x")
    os.utime(mine, (0, 0))
    photo = IMAGES / "photos-misc103" / "dog_0.jpg"
    proc = cli("run", "--model", str(RESNET8), "--source", str(photo), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not gone.exists() and alive.exists() and mine.exists()


def test_nothing_is_removed_from_a_workspace_that_cannot_be_written(open_tmp):
    """Cleaning is best effort: a read-only workspace still opens (uid 65534 cannot delete)."""
    root = open_tmp / "ro"
    root.mkdir()
    (root / "spec.json").write_text("{}")
    stale = root / ".x.abcdefgh.part"
    stale.write_text("x")
    os.utime(stale, (0, 0))
    root.chmod(0o755)
    got = run_as_nobody(
        "from app.core.model.workspace import Workspace\n"
        f"result = [str(p) for p in Workspace.open({str(root)!r}).clean_leftovers()]"
    )
    assert got["result"] == [] and stale.exists()


def test_a_workspace_in_a_folder_one_may_not_enter_is_one_line_naming_the_file(tmp_path):
    """pytest's tmp_path sits in a 0700 folder of root's: uid 65534 cannot look inside, and the
    PermissionError raised by a mere `is_file` becomes main's one line naming the file."""
    root = tmp_path / "ws"
    root.mkdir()
    body = f"""
import io, contextlib
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = app.cli.main.main(["bench", "--workspace", {str(root)!r}])
result = {{"code": code, "err": err.getvalue()}}
"""
    got = run_as_nobody(body)["result"]
    assert got["code"] == 2, got
    assert got["err"].strip().splitlines() == [
        f"int8-studio: error: cannot use {root / 'spec.json'}: permission denied; choose another "
        "location (or fix its permissions) and run again"
    ]
