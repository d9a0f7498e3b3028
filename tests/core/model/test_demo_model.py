"""The demo-model download against a local HTTP server serving the real file (no internet)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.cli import cmd_fetch_demo
from app.core.errors import Cancelled, CancelToken, UserError
from app.core.model import demo as demo_model
from app.core.model.demo import (
    COLORMAP_FILE,
    DEMO_SIZE,
    MODEL_FILE,
    fetch_demo_model,
    is_verified,
)
from app.core.model.inspection import inspect_model
from tests.conftest import YOLOX

REAL = YOLOX / "yolox_nano.onnx"
pytestmark = pytest.mark.skipif(not REAL.is_file(), reason=f"demo model copy not found at {REAL}")


class DemoServer:
    """A local server with one route per way a download can go wrong; counts requests."""

    def __init__(self, data: bytes) -> None:
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0xFF
        self.routes: dict[str, tuple[bytes, int | None]] = {
            "/yolox_nano.onnx": (data, None),
            "/truncated.onnx": (data[: len(data) // 2], None),
            # Announces the full length, then hangs up halfway: a connection lost mid-transfer.
            "/cut.onnx": (data[: len(data) // 2], len(data)),
            "/altered.onnx": (bytes(flipped), None),
        }
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, length = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length or len(body)))
                self.end_headers()
                self.close_connection = True
                try:
                    for i in range(0, len(body), 256 * 1024):
                        self.wfile.write(body[i : i + 256 * 1024])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client refused the file early (wrong length, cancelled): expected

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    srv = DemoServer(REAL.read_bytes())
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(demo_model.URL_ENV, raising=False)


def closed_port() -> int:
    """A local port with nothing listening: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def leftovers(folder: Path) -> list[str]:
    """Model files or partial downloads left in `folder` (the colormap does not count)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != COLORMAP_FILE)


def test_expected_size_and_hash_are_those_of_the_shared_copy() -> None:
    assert REAL.stat().st_size == DEMO_SIZE
    assert is_verified(REAL)


def test_good_download_is_verified_and_usable(server: DemoServer, tmp_path: Path) -> None:
    seen: list[float] = []
    demo = fetch_demo_model(
        tmp_path, url=server.url("/yolox_nano.onnx"), progress=lambda f, m: seen.append(f)
    )
    assert demo.downloaded and demo.path == tmp_path / MODEL_FILE
    assert demo.path.read_bytes() == REAL.read_bytes()
    assert leftovers(tmp_path) == [MODEL_FILE]  # no .part file left beside it
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 3
    colormap = json.loads(demo.colormap.read_text(encoding="utf-8"))
    labels = [item["label"] for item in colormap["items"]]
    assert len(labels) == 80 and labels[0] == "person" and labels[-1] == "toothbrush"
    assert all(0.0 <= c <= 1.0 for item in colormap["items"] for c in item["color"])
    # The app picks the labels up from the sidecar and the preset from the hash.
    spec = inspect_model(demo.path)
    assert spec.task == "detection"
    assert any(COLORMAP_FILE in note for note in spec.notes)


@pytest.mark.parametrize("path", ["/truncated.onnx", "/cut.onnx", "/altered.onnx"])
def test_bad_download_is_refused_and_deleted(server: DemoServer, tmp_path: Path, path: str) -> None:
    with pytest.raises(UserError, match=r"incomplete or altered.*deleted"):
        fetch_demo_model(tmp_path, url=server.url(path))
    assert leftovers(tmp_path) == []


def test_bad_download_does_not_replace_a_good_file_being_repaired(
    server: DemoServer, tmp_path: Path
) -> None:
    # A damaged copy in place is not trusted, and a bad download never lands under its name.
    (tmp_path / MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(UserError):
        fetch_demo_model(tmp_path, url=server.url("/altered.onnx"))
    assert (tmp_path / MODEL_FILE).read_bytes() == b"not a model"
    demo = fetch_demo_model(tmp_path, url=server.url("/yolox_nano.onnx"))
    assert demo.downloaded and is_verified(demo.path)


def test_refused_connection_means_no_network(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no network.*File > Open.*--model"):
        fetch_demo_model(tmp_path, url=f"http://127.0.0.1:{closed_port()}/yolox_nano.onnx")
    assert leftovers(tmp_path) == []


def test_silent_server_times_out_as_no_network(tmp_path: Path) -> None:
    # Listening but never answering: the connection is accepted by the kernel, then nothing.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/yolox_nano.onnx"
        with pytest.raises(UserError, match=r"no network.*timed out"):
            fetch_demo_model(tmp_path, url=url, timeout=0.5)
    assert leftovers(tmp_path) == []


def test_dns_failure_means_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stands in for a machine without DNS, so the test never asks a real resolver.
    def no_dns(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(UserError, match=r"no network.*cannot resolve demo\.invalid"):
        fetch_demo_model(tmp_path, url="https://demo.invalid/yolox_nano.onnx")


def test_http_error_names_the_status_not_the_network(server: DemoServer, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="HTTP 404") as err:
        fetch_demo_model(tmp_path, url=server.url("/gone.onnx"))
    assert "no network" not in str(err.value)
    assert leftovers(tmp_path) == []


def test_cancel_mid_download_leaves_no_file(server: DemoServer, tmp_path: Path) -> None:
    token = CancelToken()
    seen: list[float] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(fraction)
        if fraction > 0.3:
            token.cancel()

    with pytest.raises(Cancelled):
        fetch_demo_model(
            tmp_path, url=server.url("/yolox_nano.onnx"), progress=progress, cancel=token
        )
    assert 0.3 < max(seen) < 0.99
    assert leftovers(tmp_path) == []


def test_verified_file_is_reused_without_a_request(server: DemoServer, tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(REAL.read_bytes())
    before = len(server.requests)
    demo = fetch_demo_model(tmp_path, url=server.url("/yolox_nano.onnx"))
    assert not demo.downloaded and demo.url is None
    assert len(server.requests) == before
    assert demo.colormap.is_file()


def test_file_url_works(tmp_path: Path) -> None:
    demo = fetch_demo_model(tmp_path, url=REAL.resolve().as_uri())
    assert demo.downloaded and is_verified(demo.path)


def test_missing_file_url_is_not_called_a_network_problem(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read the demo model") as err:
        fetch_demo_model(tmp_path, url=(tmp_path / "nothing.onnx").as_uri())
    assert "no network" not in str(err.value)


def test_env_url_and_default_folder(
    server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv(demo_model.URL_ENV, server.url("/yolox_nano.onnx"))
    demo = fetch_demo_model()
    expected = tmp_path / "data" / "int8-studio" / "demo" / "yolox-nano-coco" / MODEL_FILE
    assert demo.path == expected and demo.url == server.url("/yolox_nano.onnx")
    assert server.requests[-1] == "/yolox_nano.onnx"


def test_cli_prints_the_path(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cmd_fetch_demo.main(["--url", server.url("/yolox_nano.onnx"), "--dest", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == str(tmp_path / MODEL_FILE)
    assert "verified" in err
    code = cmd_fetch_demo.main(
        ["--url", f"http://127.0.0.1:{closed_port()}/", "--dest", str(tmp_path / "x")]
    )
    assert code == 2 and "no network" in capsys.readouterr().err


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoServer, Path]]:
    """The same server behind TLS with a self-signed certificate for 127.0.0.1."""

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found (needed to make a test certificate)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    srv = DemoServer(REAL.read_bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.httpd.socket = context.wrap_socket(srv.httpd.socket, server_side=True)
    srv.base = srv.base.replace("http://", "https://")
    srv.thread.start()
    yield srv, cert
    srv.httpd.shutdown()
    srv.httpd.server_close()


def test_https_download_with_a_trusted_certificate(
    https_server: tuple[DemoServer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    demo = fetch_demo_model(tmp_path, url=srv.url("/yolox_nano.onnx"))
    assert demo.downloaded and is_verified(demo.path)


def test_untrusted_certificate_is_not_called_no_network(
    https_server: tuple[DemoServer, Path], tmp_path: Path
) -> None:
    srv, _cert = https_server
    with pytest.raises(UserError, match=r"certificate .* could not be verified") as err:
        fetch_demo_model(tmp_path, url=srv.url("/yolox_nano.onnx"))
    assert "no network" not in str(err.value)
    assert leftovers(tmp_path) == []


def test_stale_partial_download_is_cleaned_up(server: DemoServer, tmp_path: Path) -> None:
    stale, fresh = tmp_path / f".{MODEL_FILE}.old1.part", tmp_path / f".{MODEL_FILE}.new1.part"
    for part in (stale, fresh):
        part.write_bytes(b"half a model")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    fetch_demo_model(tmp_path, url=server.url("/yolox_nano.onnx"))
    # The fresh one may belong to a download still running in another process.
    assert not stale.exists() and fresh.exists()
