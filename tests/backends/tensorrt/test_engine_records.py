"""Engine records: what an engine was built from, and the check before TensorRT loads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.backends.tensorrt import (
    BuildSettings,
    EngineExpectation,
    check_engine,
    side_path,
)
from app.backends.tensorrt.engine_header import sha256_file, write_engine
from app.core.errors import UserError
from tests.backends.tensorrt.record_helpers import _expect, _record


# ------------------------------------------------------------------------------------------
# engine records
# ------------------------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path) -> Path:
    path = tmp_path / "model_fp16.engine"
    write_engine(path, b"PLAN" * 1000, _record())
    return path


def test_record_round_trip(engine: Path) -> None:
    side = side_path(engine)
    assert side.name == "model_fp16.engine.json"
    data = json.loads(side.read_text())
    assert data["engine_sha256"] == sha256_file(engine) and data["engine_size"] == 4000
    assert data["app_version"] and data["trt_version"] == "10.14.1.48"
    record = check_engine(engine, _expect())
    assert record is not None and record.settings["precision"] == "fp16"
    assert not list(engine.parent.glob("*.part"))  # atomic writes left no temp files


def test_tampered_engine(engine: Path) -> None:
    data = bytearray(engine.read_bytes())
    data[10] ^= 0xFF
    engine.write_bytes(bytes(data))
    with pytest.raises(UserError, match="engine bytes were altered"):
        check_engine(engine, _expect())


def test_truncated_engine(engine: Path) -> None:
    engine.write_bytes(engine.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"truncated or replaced \(1000 bytes on disk, 4000"):
        check_engine(engine, _expect())


def test_other_model(engine: Path) -> None:
    with pytest.raises(UserError, match="built from another model"):
        check_engine(engine, _expect(model_sha256="b" * 64))


def test_other_trt_version(engine: Path) -> None:
    with pytest.raises(UserError, match=r"stale TensorRT version: built with 10\.14\.1\.48, this "
                                        r"machine has 11\.0\.0\.1"):  # fmt: skip
        check_engine(engine, _expect(trt_version="11.0.0.1"))


def test_other_gpu(engine: Path) -> None:
    with pytest.raises(UserError, match=r"another GPU: NVIDIA H100 80GB HBM3 \(sm 9.0\), this is "
                                        r"NVIDIA L4 \(sm 8.9\)"):  # fmt: skip
        check_engine(engine, _expect(gpu_name="NVIDIA L4", compute_capability="8.9"))


def test_settings_differ_names_the_key(engine: Path) -> None:
    wanted = BuildSettings(precision="fp16", graph="fp16", opt_level=5).identity()
    with pytest.raises(UserError, match="settings differ: opt_level 3 -> 5"):
        check_engine(engine, _expect(settings=wanted))


def test_all_differences_reported_together(engine: Path) -> None:
    with pytest.raises(UserError) as err:
        check_engine(engine, _expect(trt_version="10.15.0.1", model_sha256="c" * 64))
    assert "stale TensorRT version" in str(err.value) and "another model" in str(err.value)


def test_unchecked_fields_are_skipped(engine: Path) -> None:
    assert check_engine(engine, EngineExpectation()) is not None


def test_missing_side_file(engine: Path) -> None:
    side_path(engine).unlink()
    with pytest.raises(UserError, match="not built by INT8 Studio: engines can run code through "
                                        "plugins; rebuild or confirm"):  # fmt: skip
        check_engine(engine, _expect())
    assert check_engine(engine, _expect(), allow_unrecorded=True) is None


def test_unreadable_side_file_and_missing_engine(engine: Path, tmp_path: Path) -> None:
    side_path(engine).write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        check_engine(engine, _expect())
    with pytest.raises(UserError, match="engine file not found"):
        check_engine(tmp_path / "nope.engine", _expect())


def test_new_engine_with_stale_record_is_caught(engine: Path) -> None:
    """A crash between the two writes leaves a new engine beside the old record."""
    engine.write_bytes(b"X" * 4000)  # same size, other bytes
    with pytest.raises(UserError, match="altered"):
        check_engine(engine, _expect())


def test_version_compatible_engine_runs_on_later_same_major(tmp_path: Path) -> None:
    path = tmp_path / "vc.engine"
    settings = BuildSettings(version_compatible=True).identity()
    write_engine(path, b"PLAN", _record(trt_version="10.3.0", settings=settings))
    assert check_engine(path, _expect(trt_version="10.9.0", settings=settings)) is not None
    with pytest.raises(UserError, match="stale"):
        check_engine(path, _expect(trt_version="11.0.0", settings=settings))
    with pytest.raises(UserError, match="stale"):
        check_engine(path, _expect(trt_version="10.2.0", settings=settings))
