"""Every file the app writes is standard JSON, durable, and a failed write names its file
(issue 18: NaN written as `NaN`, disk-full messages that named no file)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from app.core.atomic import write_json
from tests.reliability.helpers import ROOT, file_size_limit


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null(tmp_path):
    path = tmp_path / "report.json"
    write_json(path, {"map": float("nan"), "rows": [{"p99": np.float64("inf")}, 1.5], "n": 3})
    assert _strict(path.read_text()) == {"map": None, "rows": [{"p99": None}, 1.5], "n": 3}


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "results" / "evaluate.json"
    path.parent.mkdir()
    path.write_text('{"old": true}\n')
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from app.core.atomic import write_json\n"
        "try:\n"
        "    write_json(sys.argv[2], {'rows': ['x' * 100] * 1000})\n"
        "except OSError as exc:\n"
        "    print(exc.filename); print(exc.errno)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), str(path)],
        capture_output=True,
        text=True,
        preexec_fn=file_size_limit(4096),
        timeout=60,
    )
    lines = proc.stdout.split()
    assert lines and lines[0] == str(path), proc.stdout + proc.stderr
    assert path.read_text() == '{"old": true}\n'
    assert [p.name for p in path.parent.iterdir()] == ["evaluate.json"]  # no .part left


@pytest.mark.parametrize("bad", [{"a": {1, 2}}])
def test_unserialisable_values_fail_before_touching_the_file(tmp_path, bad):
    path = tmp_path / "x.json"
    path.write_text("{}\n")
    with pytest.raises(TypeError):
        write_json(path, bad)
    assert path.read_text() == "{}\n" and len(list(tmp_path.iterdir())) == 1
