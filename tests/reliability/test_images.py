"""Reliability (issue 8), images: awkward and hostile image files through the real `run` and
`calibrate` code paths. (tests/core/frames/test_sources_and_run.py already runs the awkward
folder through `run`; these cover calibration, paths, permissions, folders that change, and
huge images.)"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import app.core.frames.sources as sources_mod
import app.core.quant.calibration_images as calibration_mod
from app.cli.main import main
from app.core.frames.imageio import ImageReadError, read_image
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate
from tests.conftest import IMAGES, RESNET8, needs_assets
from tests.image_files import INVALID, VALID, make_awkward_folder
from tests.reliability.helpers import (
    cli,
    copy_images,
    copy_model_folder,
    open_to_all,
    run_as_nobody,
    temp_leftovers,
)

pytestmark = needs_assets
PHOTO = IMAGES / "photos-misc103" / "dog_0.jpg"
CIFAR = IMAGES / "cifar10-test500"


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    return make_awkward_folder(tmp_path_factory.mktemp("awkward"), PHOTO)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A scratch folder that uid 65534 can reach (pytest's tmp_path is under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="int8-reliability-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def resnet8(tmp_path) -> Path:
    """A private copy of ResNet-8 (calibration writes beside the model; see the bug list)."""
    return copy_model_folder(RESNET8, tmp_path / "resnet8")


def _cifar(n: int) -> list[Path]:
    return sorted((CIFAR / "cat").glob("*.jpg"))[:n]


# ---------------------------------------------------------------------------------------------
def test_calibrate_uses_every_decodable_odd_image_and_says_skipped_empty_text_truncated(
    awkward, resnet8, tmp_path
):
    """grey, RGBA, 16-bit, CMYK, EXIF-rotated, 8K, 3x2, non-ASCII name: used; 0-byte, text
    named .jpg, truncated: skipped, each named with its reason on stderr and in the JSON."""
    report = tmp_path / "calib.json"
    proc = cli(
        "calibrate",
        "--model",
        str(resnet8),
        "--images",
        str(awkward),
        "--method",
        "minmax",
        "--workspace",
        str(tmp_path / "ws"),
        "--json",
        str(report),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    data = json.loads(report.read_text())
    assert data["images"] == len(VALID)
    skipped = {Path(s["source"]).relative_to(awkward).as_posix(): s for s in data["skipped"]}
    assert set(skipped) == set(INVALID)
    for name, reason in INVALID.items():
        assert reason in skipped[name]["reason"]
        assert f"skipped: {awkward / name}: " in proc.stderr
    assert "empty file (0 bytes)" in proc.stderr
    assert "truncated file (image data ends early); re-copy or re-export it" in proc.stderr
    assert "not a readable image (unknown format or corrupt data)" in proc.stderr
    # the few-images warning counts what was used, not what was chosen
    n = len(VALID) + len(INVALID)
    assert f"only {len(VALID)} readable calibration images (of {n} chosen)" in proc.stderr
    assert temp_leftovers(tmp_path / "ws") == []


def test_run_and_calibrate_accept_spaces_and_non_ascii_in_model_image_workspace_output_paths(
    tmp_path,
):
    base = tmp_path / "Über Ordner ✓"
    model = copy_model_folder(RESNET8, base / "mödel folder")
    images = copy_images(_cifar(3), base / "phötos with space")
    shutil.copy(images / _cifar(1)[0].name, images / "kätze bild 1.jpg")
    ws, out, report = base / "wörk space", base / "öut put", base / "rün.json"
    proc = cli(
        "calibrate",
        "--model",
        str(model.parent),
        "--images",
        str(images),
        "--method",
        "minmax",
        "--workspace",
        str(ws),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (ws / "calibration" / "latest.json").is_file()
    proc = cli(
        "run",
        "--model",
        str(model),
        "--source",
        str(images),
        "--output",
        str(out),
        "--json",
        str(report),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(report.read_text(encoding="utf-8"))
    assert len(data["results"]) == 4 and data["skipped"] == []
    assert (out / "kätze_bild_1.jpg").is_file()


def test_each_bad_file_given_as_its_own_source_is_skipped_with_its_reason(awkward, tmp_path):
    report = tmp_path / "r.json"
    args = ["run", "--model", str(RESNET8), "--json", str(report)]
    for name in [*INVALID, "grey.jpg"]:
        args += ["--source", str(awkward / name)]
    assert main(args) == 0
    data = json.loads(report.read_text())
    assert [Path(r["source"]).name for r in data["results"]] == ["grey.jpg"]
    reasons = {Path(s["source"]).name: s["reason"] for s in data["skipped"]}
    assert reasons["zero_bytes.jpg"] == "empty file (0 bytes)"
    assert reasons["text_named.jpg"] == "not a readable image (unknown format or corrupt data)"
    assert reasons["truncated.jpg"].startswith("truncated file (image data ends early)")


# ---------------------------------------------------------------------------------------------
# unreadable permissions: root reads anything, so the reads happen as uid 65534
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def locked_folder(open_tmp) -> Path:
    folder = copy_images(_cifar(3), open_tmp / "locked")
    (folder / _cifar(3)[1].name).chmod(0o000)
    folder.chmod(0o755)
    return folder


def test_unreadable_image_says_permission_denied_in_read_image_and_run(locked_folder, open_tmp):
    locked = locked_folder / _cifar(3)[1].name
    out = open_tmp / "out"
    open_to_all(out)
    body = f"""
from app.core.frames.imageio import ImageReadError, read_image
try:
    read_image({str(locked)!r}); direct = "read"
except ImageReadError as exc:
    direct = str(exc)
code = app.cli.main.main(["run", "--model", {str(RESNET8)!r}, "--source", {str(locked_folder)!r},
                          "--json", {str(out / "r.json")!r}])
result = {{"direct": direct, "code": code,
          "report": json.load(open({str(out / "r.json")!r}))}}
"""
    got = run_as_nobody(body)["result"]
    assert got["direct"] == "permission denied; check the file's permissions"
    assert got["code"] == 0
    assert len(got["report"]["results"]) == 2
    assert got["report"]["skipped"] == [
        {"source": str(locked), "reason": "permission denied; check the file's permissions"}
    ]


def test_calibrate_skips_unreadable_image_saying_permission_denied(locked_folder, open_tmp):
    model = copy_model_folder(RESNET8, open_tmp / "model")  # writable by nobody: see bug list
    ws = open_tmp / "ws"
    open_to_all(ws)
    body = f"""
code = app.cli.main.main(["calibrate", "--model", {str(model)!r}, "--images",
                          {str(locked_folder)!r}, "--method", "minmax", "--workspace", {str(ws)!r},
                          "--json", {str(ws / "c.json")!r}])
result = {{"code": code, "report": json.load(open({str(ws / "c.json")!r}))}}
"""
    got = run_as_nobody(body)
    assert got["result"]["code"] == 0, got["stderr"][-2000:]
    report = got["result"]["report"]
    assert report["images"] == 2
    assert [s["reason"] for s in report["skipped"]] == [
        "permission denied; check the file's permissions"
    ]
    assert "permission denied; check the file's permissions" in got["stderr"]


def test_calibrate_works_when_the_model_folder_is_read_only(open_tmp):
    model = copy_model_folder(RESNET8, open_tmp / "model")
    model.parent.chmod(0o555)
    images = copy_images(_cifar(2), open_tmp / "imgs")
    ws = open_tmp / "ws"
    open_to_all(ws)
    images.chmod(0o755)
    body = f"""
try:
    code = app.cli.main.main(["calibrate", "--model", {str(model)!r}, "--images", {str(images)!r},
                              "--method", "minmax", "--workspace", {str(ws)!r}])
except BaseException as exc:
    code = repr(exc) + " " + str(getattr(exc, "filename", ""))
result = code
"""
    got = run_as_nobody(body)
    assert got["result"] == 0, got["stderr"][-1500:]


# ---------------------------------------------------------------------------------------------
# a folder that changes while it is read
# ---------------------------------------------------------------------------------------------
def _changing_listing(real, delete: list[Path], add: Path):
    """list_images that lists, then (as a sync client would) deletes and adds files."""

    def listing(folder):
        files = real(folder)
        for path in delete:
            path.unlink()
        shutil.copy(PHOTO, add)
        return files

    return listing


def test_run_on_a_folder_that_changes_between_listing_and_reading_skips_vanished_files(
    tmp_path, monkeypatch
):
    folder = copy_images(_cifar(5), tmp_path / "changing")
    gone = sorted(folder.iterdir())[1:3]
    added = folder / "arrived_late.jpg"
    monkeypatch.setattr(
        sources_mod, "list_images", _changing_listing(sources_mod.list_images, gone, added)
    )
    report = tmp_path / "r.json"
    assert (
        main(["run", "--model", str(RESNET8), "--source", str(folder), "--json", str(report)]) == 0
    )
    data = json.loads(report.read_text())
    assert len(data["results"]) == 3
    assert {Path(s["source"]) for s in data["skipped"]} == set(gone)
    assert {s["reason"] for s in data["skipped"]} == {"file disappeared while reading"}
    assert all("arrived_late" not in r["source"] for r in data["results"])


def test_calibrate_on_a_folder_that_changes_between_listing_and_reading_skips_vanished_files(
    tmp_path, monkeypatch
):
    folder = copy_images(_cifar(5), tmp_path / "changing")
    gone = sorted(folder.iterdir())[1:3]
    monkeypatch.setattr(
        calibration_mod,
        "list_images",
        _changing_listing(calibration_mod.list_images, gone, folder / "arrived_late.jpg"),
    )
    model = copy_model_folder(RESNET8, tmp_path / "model")
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    result = calibrate(ws, folder, method="minmax")
    assert len(result.images_used) == 3
    assert {s.reason for s in result.skipped} == {"file disappeared while reading"}


# ---------------------------------------------------------------------------------------------
# huge images (decompression bombs)
# ---------------------------------------------------------------------------------------------
def _grey_png(path: Path, width: int, height: int) -> Path:
    """A valid all-black 8-bit grey PNG written row by row (a few hundred KB on disk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    comp = zlib.compressobj(6)
    row = b"\x00" * (width + 1)
    parts = [comp.compress(row) for _ in range(height)]
    idat = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def test_image_over_120_megapixels_is_refused_as_too_large_before_decoding(tmp_path):
    png = _grey_png(tmp_path / "big.png", 11_000, 11_500)  # 126 MP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning
        with pytest.raises(ImageReadError, match=r"image too large \(11000x11500 pixels; limit"):
            read_image(png)


def test_image_over_pillows_bomb_limit_is_also_refused_as_too_large(tmp_path):
    png = _grey_png(tmp_path / "bomb.png", 15_000, 12_000)  # 180 MP
    with pytest.raises(ImageReadError, match="image too large"):
        read_image(png)


def test_a_presets_folder_the_user_cannot_read_is_a_warning_not_a_refusal(open_tmp):
    """Every command inspects the model, and inspection lists the user's presets: a folder
    that cannot be listed used to stop every command with `permission denied`."""
    model = copy_model_folder(RESNET8, open_tmp / "model")
    locked = open_tmp / "presets"
    locked.mkdir()
    (locked / "mine.json").write_text('{"match": {"sha256": ["x"]}}')
    locked.chmod(0o700)  # root's: uid 65534 may not list it
    body = f"""
os.environ["INT8_STUDIO_PRESETS"] = {str(locked)!r}
spec = app.core.model.inspection.inspect_model({str(model)!r})
result = {{"preset": spec.preset, "problems": spec.problems}}
"""
    got = run_as_nobody(body, imports="import app.core.model.inspection")
    assert got["result"]["preset"] == "resnet8-cifar10.json"  # the app's presets still apply
    assert any(
        str(locked) in p and "cannot read your presets folder" in p
        for p in got["result"]["problems"]
    ), got["result"]


def test_a_copy_of_a_model_in_a_read_only_folder_goes_to_the_users_data(open_tmp):
    """`adapt` (the Model tab's copy button) writes beside the model; where the user may not
    write, the copy goes to the user's data folder instead of failing."""
    from tests.core.model.derived_layouts import build_layout

    shelf = open_tmp / "shelf"
    shelf.mkdir()
    build_layout("torchvision", shelf / "tv.onnx")  # one image [3, H, W]: needs a copy
    shelf.chmod(0o755)  # root's: uid 65534 may read, not write
    data = open_tmp / "data"
    data.mkdir()
    data.chmod(0o777)
    body = f"""
os.environ["XDG_DATA_HOME"] = {str(data)!r}
copy = app.core.model.adapted_copy.write_adapted_copy({str(shelf / "tv.onnx")!r})
result = str(copy.path)
"""
    got = run_as_nobody(body, imports="import app.core.model.adapted_copy")
    assert got["result"] == str(data / "int8-studio" / "adapted" / "tv.adapted.onnx"), got
    assert not (shelf / "tv.adapted.onnx").exists()
