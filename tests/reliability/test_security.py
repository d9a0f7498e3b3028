"""Reliability (issue 8), security: untrusted files. No unpickling or eval in the app; sidecar,
workspace and engine JSON that is huge, deeply nested or of the wrong types is refused by name;
model names, labels and file names cannot make the app write outside the workspace or --output
folder; an engine without an INT8 Studio record is refused unless the user allows it."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest

from app.backends.tensorrt.engine_header import (
    EngineExpectation,
    EngineRecord,
    check_engine,
    side_path,
    write_engine,
)
from app.cli.main import main
from app.cli.output import safe_name
from app.core.errors import UserError
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace, safe_component
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.quantize import quantize
from tests.conftest import IMAGES, RESNET8
from tests.model_files import tiny_classifier
from tests.reliability.helpers import ROOT, copy_images, copy_model_folder, deep_json

APP = ROOT / "app"
HUGE = 5 * 1024 * 1024  # over the app's 4 MiB sidecar limit
HOSTILE_NAMES = [
    "../../etc/passwd",
    "..",
    ".",
    "/absolute/path",
    "..\\..\\windows\\system32",
    "a/../../b",
    "",
    "name\x00with-nul",
    "CON",
    "ünïcödé ✓ name",
    "." * 300,
]


# ---------------------------------------------------------------------------------------------
# no code from data
# ---------------------------------------------------------------------------------------------
def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(APP.rglob("*.py"))]


def test_app_never_imports_pickle_marshal_or_shelve():
    pattern = re.compile(
        r"^\s*(?:import|from)\s+(?:pickle|cPickle|marshal|shelve|dill|cloudpickle|joblib)\b",
        re.M,
    )
    hits = [
        f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
        for p, text in _sources()
        for m in pattern.finditer(text)
    ]
    assert hits == []


def test_app_never_calls_eval_or_exec_on_text():
    calls = [
        f"{p.relative_to(ROOT)}:{node.lineno}: {node.func.id}()"
        for p, text in _sources()
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("eval", "exec", "compile", "__import__")
    ]
    assert calls == []


def test_app_never_loads_pickles_through_other_doors():
    patterns = {
        "__import__": re.compile(r"__import__\s*\("),
        "numpy allow_pickle": re.compile(r"allow_pickle\s*=\s*True"),
        "yaml.load": re.compile(r"yaml\.(?:unsafe_)?load\s*\("),
        "torch.load": re.compile(r"torch\.load\s*\("),
        "shell=True": re.compile(r"shell\s*=\s*True"),
    }
    hits = [
        f"{p.relative_to(ROOT)}: {kind}"
        for p, text in _sources()
        for kind, rx in patterns.items()
        if rx.search(text)
    ]
    assert hits == []


# ---------------------------------------------------------------------------------------------
# model sidecars: reported by name and ignored
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, content, reason",
    [
        (
            "net-classes.json",
            json.dumps({"classes": ["x" * 100] * 60_000}),
            "ignored (file is larger than 4 MiB)",
        ),
        ("labels.txt", "label\n" * 900_000, "ignored (file is larger than 4 MiB)"),
        (
            "net-classes.json",
            json.dumps({"classes": [1, 2, 3]}),
            'ignored (expected {"classes": ["name", ...]})',
        ),
        (
            "coco-colormap.json",
            json.dumps({"items": [{"label": "a", "color": "red"}]}),
            "ignored (item 0 'color' is not three numbers)",
        ),
        (
            "coco-colormap.json",
            json.dumps({"items": {"label": "a"}}),
            'ignored (expected {"items": [{"label": ..., "color": [r, g, b]}]})',
        ),
        (
            "norm_stats.json",
            json.dumps({"mean": ["0.5"] * 3, "std_dev": [1, 1, 1]}),
            'ignored (expected {"mean": [..3], "std_dev": [..3]})',
        ),
        (
            "norm_stats.json",
            json.dumps({"mean": [0, 0, 0], "std_dev": [1, 0, 1]}),
            "ignored (std_dev contains 0)",
        ),
        (
            "norm_stats.json",
            json.dumps({"mean": [True, False, True], "std_dev": [1, 1, 1]}),
            'ignored (expected {"mean": [..3], "std_dev": [..3]})',
        ),
        ("labels.txt", b"\xff\xfe\x00bad utf8", "ignored ("),
    ],
    ids=[
        "huge-json",
        "huge-txt",
        "classes-ints",
        "color-str",
        "items-dict",
        "mean-str",
        "std-zero",
        "mean-bool",
        "not-utf8",
    ],
)
def test_sidecar_that_is_huge_or_of_wrong_types_is_ignored_and_named(
    tmp_path, name, content, reason
):
    model = tiny_classifier(tmp_path / "net.onnx", classes=3)
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    spec = inspect_model(model)
    assert spec.problems and spec.problems[0].startswith(f"{path}: {reason}"), spec.problems
    assert spec.labels == ["class 0", "class 1", "class 2"] or name == "norm_stats.json"


def test_deeply_nested_sidecar_json_is_ignored_and_named(tmp_path):
    model = tiny_classifier(tmp_path / "net.onnx", classes=3)
    (tmp_path / "net-classes.json").write_text(deep_json())
    spec = inspect_model(model)
    assert spec.problems[0].startswith(f"{tmp_path / 'net-classes.json'}: ignored")


# ---------------------------------------------------------------------------------------------
# workspace files: refused by name, or treated as damaged caches and rebuilt
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def ws(tmp_path) -> Workspace:
    model = copy_model_folder(RESNET8, tmp_path / "model")
    images = copy_images(
        sorted((IMAGES / "cifar10-test500" / "cat").glob("*.jpg"))[:3], tmp_path / "images"
    )
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, images, method="minmax")
    quantize(ws, precisions=["int8"])
    return ws


@pytest.mark.parametrize(
    "content",
    [json.dumps({"path": 1}), json.dumps([1, 2]), '{"preprocess": ', "x" * 100],
    ids=["missing-fields", "list", "truncated", "garbage"],
)
def test_damaged_workspace_spec_is_refused_naming_it_delete_to_reinspect(ws, content):
    ws.spec_path.write_text(content)
    with pytest.raises(
        UserError,
        match=r"spec.json: not a valid model spec \(.*\); delete it to "
        r"re-inspect",
    ):
        ws.spec()
    rc = main(["quantize", "--workspace", str(ws.root), "--precision", "int8"])
    assert rc == 2


def test_deeply_nested_workspace_spec_is_refused_naming_it(ws):
    ws.spec_path.write_text(deep_json())
    with pytest.raises(UserError, match=r"spec\.json: not a valid model spec"):
        ws.spec()


@pytest.mark.parametrize("which", ["meta-files-list", "latest-list", "meta-deep"])
def test_calibration_records_of_wrong_types_count_as_damaged(ws, which):
    folder = latest_calibration(ws)
    if which == "meta-files-list":
        (folder / "meta.json").write_text(json.dumps({"files": ["ranges.json"]}))
    elif which == "latest-list":
        (ws.root / "calibration" / "latest.json").write_text("[1]")
    else:
        (folder / "meta.json").write_text(deep_json())
    with pytest.raises(UserError, match=r"run `calibrate` again|no calibration yet"):
        latest_calibration(ws)


@pytest.mark.parametrize("content", ["[1, 2]", "42", deep_json()], ids=["list", "int", "deep"])
def test_variant_record_of_wrong_type_counts_as_damaged_and_is_rebuilt(ws, content):
    ws.variant_meta_path("int8").write_text(content)
    assert not ws.valid_variant("int8")
    assert quantize(ws, precisions=["int8"])[0]["reused"] is False


def test_variant_record_with_wrong_field_types_counts_as_damaged(ws):
    meta = json.loads(ws.variant_meta_path("int8").read_text())
    ws.variant_meta_path("int8").write_text(json.dumps({**meta, "sha256": 12345, "key": None}))
    assert not ws.valid_variant("int8")
    assert [v["valid"] for v in ws.variants()] == [False]
    assert quantize(ws, precisions=["int8"])[0]["reused"] is False


# ---------------------------------------------------------------------------------------------
# TensorRT engine side files
# ---------------------------------------------------------------------------------------------
def _record() -> EngineRecord:
    return EngineRecord(
        trt_version="10.14.1.48",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        model_sha256="a" * 64,
        settings={"precision": "int8", "graph": "qdq"},
    )


def _expect() -> EngineExpectation:
    r = _record()
    return EngineExpectation(
        trt_version=r.trt_version,
        gpu_name=r.gpu_name,
        compute_capability=r.compute_capability,
        model_sha256=r.model_sha256,
        settings=r.settings,
    )


@pytest.fixture
def engine(tmp_path) -> Path:
    path = tmp_path / "yolox_int8.engine"
    write_engine(path, b"PLAN" * 2048, _record())
    return path


def test_engine_without_an_int8_studio_record_is_refused_unless_allowed(engine):
    side_path(engine).unlink()
    with pytest.raises(
        UserError,
        match=r"^yolox_int8.engine was not built by INT8 Studio: engines "
        r"can run code through plugins; rebuild or confirm$",
    ):
        check_engine(engine, _expect())
    assert check_engine(engine, _expect(), allow_unrecorded=True) is None


def test_engine_with_an_empty_record_is_refused_saying_unreadable(engine):
    side_path(engine).write_text("")
    with pytest.raises(
        UserError,
        match=r"the record yolox_int8.engine.json beside the engine is "
        r"unreadable .*; rebuild",
    ):
        check_engine(engine, _expect(), allow_unrecorded=True)


def test_engine_renamed_beside_another_engines_record_is_refused(engine, tmp_path):
    other = tmp_path / "other.engine"
    write_engine(other, b"ANOTHER PLAN" * 100, _record())
    shutil.copy(side_path(other), side_path(engine))
    with pytest.raises(
        UserError,
        match=r"engine yolox_int8\.engine cannot be used: engine is truncated or replaced",
    ):
        check_engine(engine, _expect())


@pytest.mark.parametrize("which", ["list", "settings-string", "deep", "huge"])
def test_engine_record_of_wrong_type_deep_or_huge_is_refused_naming_it(engine, which):
    side = side_path(engine)
    data = json.loads(side.read_text())
    if which == "list":
        side.write_text(json.dumps([data]))
    elif which == "settings-string":
        side.write_text(json.dumps({**data, "settings": "int8"}))
    elif which == "deep":
        side.write_text(deep_json())
    else:
        side.write_text(json.dumps({**data, "padding": "x" * HUGE}))
    with pytest.raises(UserError, match=r"yolox_int8\.engine\.json"):
        check_engine(engine, _expect())


# ---------------------------------------------------------------------------------------------
# nothing written outside the workspace or --output folder
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_safe_component_and_safe_name_cannot_leave_their_folder(tmp_path, name):
    for make in (safe_component, safe_name):
        part = make(name)
        assert part and part not in (".", "..") and not part.startswith(".")
        assert "/" not in part and "\\" not in part and "\x00" not in part
        assert len(part) <= 150
        assert (tmp_path / part).resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_variant_names_from_user_text_stay_in_the_variants_folder(tmp_path, name):
    ws = Workspace(tmp_path / "ws")
    for path in (ws.variant_path(name), ws.variant_meta_path(name)):
        assert path.parent == (tmp_path / "ws" / "variants").resolve()


def test_workspace_path_refuses_dot_dot_and_symlinks_that_lead_outside(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    for parts in [("..", "evil.json"), ("results", "../../evil"), ("/etc", "passwd")]:
        with pytest.raises(UserError, match="refusing to write outside the workspace"):
            ws.path(*parts)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (ws.root / "variants").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserError, match="refusing to write outside the workspace: variants"):
        ws.variant_path("int8")
    assert list(outside.iterdir()) == []


def test_default_workspace_for_a_model_with_a_hostile_name_stays_in_the_data_folder(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = tmp_path / "models"
    folder.mkdir()
    model = tiny_classifier(folder / "..\\..\\evil name.onnx")
    ws = Workspace.for_model(inspect_model(model))
    root = (tmp_path / "data" / "int8-studio" / "workspaces").resolve()
    assert ws.root.resolve().parent == root
    assert ws.root.name.startswith("evil-name-")


def test_run_output_with_hostile_file_names_and_labels_stays_in_the_output_folder(tmp_path):
    model = copy_model_folder(RESNET8, tmp_path / "model")
    (model.parent / "labels_cifar10.txt").write_text(
        "\n".join(["../../evil", "/etc/passwd", "..\\..\\x"] + [f"ok{i}" for i in range(7)])
    )
    photo = sorted((IMAGES / "cifar10-test500" / "cat").glob("*.jpg"))[0]
    src = tmp_path / "src"
    src.mkdir()
    names = ["..\\..\\evil.jpg", ".hidden.jpg", "...jpg", "a b; rm -rf ~.jpg", "ünï ✓.jpg"]
    for name in names:
        shutil.copy(photo, src / name)
    before = {p for p in tmp_path.rglob("*")}
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--model",
                str(model),
                "--source",
                str(src),
                "--output",
                str(out),
                "--topk",
                "10",
            ]
        )
        == 0
    )
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p == out or p.parent == out for p in new), sorted(map(str, new))
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == len(names)
    assert all(not n.startswith(".") and "\\" not in n for n in written), written
