"""The YOLOX-Nano COCO demo model: download it once from its upstream release, verified.

The file is streamed to a temporary `.part` file beside its final name, checked by size and
SHA-256, and only then renamed into place; anything partial, truncated or altered is deleted and
never used. A file already in place that verifies is reused without touching the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app import __version__
from app.core.atomic import atomic_path, write_text
from app.core.errors import CancelToken, UserError
from app.core.model.files import file_sha256
from app.core.model.spec import palette_color
from app.core.resources import resources_dir

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

DEMO_URL = (
    "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"
)
# Taken from the identical copy in ../shared/assets/models/yolox-nano-coco/yolox_nano.onnx (the
# same file the yolox-official preset matches by hash); NOT checked against the live URL, because
# the machine this was written on cannot reach github.com.
DEMO_SIZE = 3_660_092
DEMO_SHA256 = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
URL_ENV = "INT8_STUDIO_DEMO_URL"
DEMO_FOLDER = "yolox-nano-coco"
MODEL_FILE = "yolox_nano.onnx"
COLORMAP_FILE = "coco-colormap.json"
CHUNK = 64 * 1024
# Where Linux distributions keep their CA bundle. A PyInstaller bundle carries the build machine's
# OpenSSL, which only looks where that distribution keeps it (Debian: /usr/lib/ssl).
CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
)
NO_NETWORK_HINT = "open a model of your own with File > Open instead (command line: --model PATH)"


@dataclass
class DemoModel:
    """Where the verified demo model and its labels are, and whether this call downloaded it."""

    path: Path
    colormap: Path
    downloaded: bool
    url: str | None


def default_demo_dir() -> Path:
    """`<user data dir>/demo/yolox-nano-coco`, beside the app's workspaces."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("int8-studio", appauthor=False)) / "demo" / DEMO_FOLDER


def demo_url(url: str | None = None) -> str:
    """The URL to fetch from: the argument, else $INT8_STUDIO_DEMO_URL (a mirror), else upstream."""
    return url or os.environ.get(URL_ENV) or DEMO_URL


def is_verified(path: Path) -> bool:
    """True if `path` is the demo model byte for byte (size first, so a wrong file is cheap)."""
    try:
        if path.stat().st_size != DEMO_SIZE:
            return False
    except OSError:
        return False
    return file_sha256(path) == DEMO_SHA256


def fetch_demo_model(
    dest: str | Path | None = None,
    url: str | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    timeout: float = 30.0,
) -> DemoModel:
    """Return the verified demo model in `dest` (default: the user data dir), downloading it once.

    `timeout` is in seconds for connecting and for each read. Raises `UserError` when there is no
    network or the download does not verify, `Cancelled` when `cancel` is set; neither leaves a
    file behind under the model's name.
    """
    folder = Path(dest) if dest is not None else default_demo_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the demo model folder {folder}: {exc.strerror}") from exc
    target = folder / MODEL_FILE
    report = progress or (lambda _f, _m: None)
    downloaded, source = False, None
    if is_verified(target):
        log.info("demo model already downloaded and verified: %s", target)
    else:
        if target.exists():
            # Replaced only by a download that verifies (renamed over it), so never lost for less.
            log.warning(
                "%s does not match the demo model's size/SHA-256; downloading again", target
            )
        source = demo_url(url)
        _remove_stale_parts(folder)
        _download(source, target, report, cancel or CancelToken(), timeout)
        downloaded = True
    colormap = write_colormap(folder)
    report(1.0, "demo model ready")
    return DemoModel(path=target, colormap=colormap, downloaded=downloaded, url=source)


def write_colormap(folder: Path) -> Path:
    """Write the COCO labels (from resources/labels/coco80.txt) as the tutorials' colormap JSON."""
    labels_file = resources_dir() / "labels" / "coco80.txt"
    labels = [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines()]
    labels = [name for name in labels if name]
    items = []
    for i, label in enumerate(labels):
        b, g, r = palette_color(i)  # the colours the app draws with when no colormap is given
        items.append({"label": label, "color": [round(c / 255.0, 4) for c in (r, g, b)]})
    text = json.dumps({"items": items}, indent=1) + "\n"
    path = folder / COLORMAP_FILE
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return path
    write_text(path, text)
    return path


def _download(
    url: str, target: Path, report: Progress, cancel: CancelToken, timeout: float
) -> None:
    """Stream `url` into a temporary file beside `target`; rename it only once it verifies."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise UserError(f"cannot download the demo model from {url!r}: use an http(s) or file URL")
    cancel.check()
    report(0.0, f"connecting to {urllib.parse.urlsplit(url).netloc or url}")
    request = urllib.request.Request(url, headers={"User-Agent": f"int8-studio/{__version__}"})
    digest = hashlib.sha256()
    got = 0
    with atomic_path(target) as part:
        try:
            context = _ssl_context() if scheme == "https" else None
            with (
                urllib.request.urlopen(request, timeout=timeout, context=context) as response,
                open(part, "wb") as out,
            ):
                announced = response.headers.get("Content-Length")
                if announced is not None and announced.isdigit() and int(announced) != DEMO_SIZE:
                    # A mirror serving another file (or an error page): stop before downloading it.
                    raise _not_the_demo(url, f"the server announces {int(announced)} bytes")
                started = time.monotonic()
                while True:
                    cancel.check()
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    got += len(chunk)
                    if got > DEMO_SIZE:
                        raise _not_the_demo(url, f"more than {DEMO_SIZE} bytes arrived")
                    digest.update(chunk)
                    out.write(chunk)
                    report(got / DEMO_SIZE * 0.99, _rate(got, started))
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            raise UserError(
                f"cannot download the demo model: {url} answered HTTP {exc.code} ({exc.reason}); "
                f"check the URL (or ${URL_ENV}), or {NO_NETWORK_HINT}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            # URLError wraps DNS failures and refused connections; a bare timeout or a reset can
            # also surface mid-transfer, and all of them mean the same thing to the user.
            raise _no_network(url, scheme, exc) from exc
        except http.client.HTTPException as exc:
            raise _not_the_demo(url, f"the connection broke after {got} bytes") from exc
        if got != DEMO_SIZE:
            raise _not_the_demo(url, f"got {got} bytes")
        if digest.hexdigest() != DEMO_SHA256:
            raise _not_the_demo(url, f"its SHA-256 is {digest.hexdigest()[:16]}...")
        report(0.995, "verified; moving into place")
    log.info("demo model downloaded from %s and verified: %s", url, target)


def _remove_stale_parts(folder: Path, max_age_s: float = 3600.0) -> None:
    """Delete partial downloads a killed process left behind (an hour old: not still running)."""
    for part in folder.glob(f".{MODEL_FILE}.*.part"):
        with contextlib.suppress(OSError):
            if time.time() - part.stat().st_mtime > max_age_s:
                part.unlink()


def _not_the_demo(url: str, why: str) -> UserError:
    return UserError(
        f"the demo model downloaded from {url} is incomplete or altered ({why}; expected "
        f"{DEMO_SIZE} bytes with SHA-256 {DEMO_SHA256[:16]}...); it was deleted, not used. "
        f"Try again, or {NO_NETWORK_HINT}"
    )


def _ssl_context() -> ssl.SSLContext:
    """The default TLS context, plus the system's CA bundle where OpenSSL did not find one."""
    context = ssl.create_default_context()
    if context.cert_store_stats()["x509_ca"] == 0:
        for bundle in CA_BUNDLES:
            if os.path.isfile(bundle):
                with contextlib.suppress(ssl.SSLError, OSError):
                    context.load_verify_locations(cafile=bundle)
                    break
    return context


def _no_network(url: str, scheme: str, exc: BaseException) -> UserError:
    reason = getattr(exc, "reason", None) or exc
    if scheme == "file":
        return UserError(f"cannot read the demo model from {url}: {reason}")
    if isinstance(reason, ssl.SSLCertVerificationError):
        # Not a network outage: the connection worked but the certificate could not be checked.
        return UserError(
            f"cannot download the demo model: the certificate of {url} could not be verified "
            f"({reason.verify_message}); point SSL_CERT_FILE at your CA bundle, or "
            f"{NO_NETWORK_HINT}"
        )
    if isinstance(reason, socket.gaierror):
        reason = f"cannot resolve {urllib.parse.urlsplit(url).hostname}"
    elif isinstance(reason, (TimeoutError, socket.timeout)):
        reason = "timed out"
    return UserError(
        f"cannot download the demo model: no network ({reason} for {url}); {NO_NETWORK_HINT}"
    )


def _rate(got: int, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-6)
    return f"{got / 1e6:.1f} / {DEMO_SIZE / 1e6:.1f} MB ({got / elapsed / 1e6:.1f} MB/s)"
