"""`fetch-demo` without a network tells a CLI user what to do in CLI words (not "File > Open")."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from app.cli.main import main


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_error_speaks_to_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/yolox_nano.onnx"
    code = main(["fetch-demo", "--url", url, "--dest", str(tmp_path), "--timeout", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("int8-studio: error: cannot download the demo")
    assert "no network" in err[0]
    assert "File > Open" not in err[0]
    assert "--model PATH" in err[0] and "file://" in err[0]
    assert list(tmp_path.iterdir()) == []
