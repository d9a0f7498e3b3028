"""Packaging: the desktop entry and icons, the per-user installer, and (opt-in) the bundle."""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
ENTRY = ROOT / "resources" / "desktop" / "int8-studio.desktop"
SVG = ROOT / "resources" / "icons" / "int8-studio.svg"
PNG = ROOT / "resources" / "icons" / "int8-studio.png"


def entry_fields(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_desktop_entry_validates() -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate not found: apt-get install desktop-file-utils")
    done = subprocess.run([tool, str(ENTRY)], capture_output=True, text=True)
    # Hints (two main categories, as asked for) are advice; errors and warnings are not.
    problems = [line for line in (done.stdout + done.stderr).splitlines() if ": hint:" not in line]
    assert done.returncode == 0 and not problems, problems


def test_desktop_entry_runs_the_gui_with_its_icon() -> None:
    fields = entry_fields(ENTRY)
    assert fields["Exec"] == "int8-studio gui"
    assert fields["Categories"] == "Development;Graphics;"
    assert fields["Icon"] == SVG.stem == PNG.stem


def test_icons_are_a_valid_svg_and_a_256px_png() -> None:
    assert ET.parse(SVG).getroot().tag.endswith("svg")
    data = PNG.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert (width, height) == (256, 256)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_and_uninstall_desktop_entry_for_a_user(tmp_path: Path) -> None:
    exe = tmp_path / "my apps" / "int8-studio"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    script = str(PACKAGING / "install-desktop-entry.sh")
    subprocess.run(["bash", script, "--exec", str(exe)], check=True, env=env, capture_output=True)
    installed = tmp_path / "data" / "applications" / "int8-studio.desktop"
    icons = tmp_path / "data" / "icons" / "hicolor"
    assert entry_fields(installed)["Exec"] == f'"{exe}" gui'  # quoted: the path has a space
    assert (icons / "scalable" / "apps" / "int8-studio.svg").read_bytes() == SVG.read_bytes()
    assert (icons / "256x256" / "apps" / "int8-studio.png").read_bytes() == PNG.read_bytes()
    subprocess.run(["bash", script, "--uninstall"], check=True, env=env, capture_output=True)
    assert not installed.exists()
    assert not list(icons.rglob("int8-studio.*"))


def _bundle_skip_reason() -> str | None:
    """The bundle is built and smoke-run wherever PyInstaller is installed (about two minutes
    on two cores); INT8_STUDIO_TEST_BUNDLE=0 skips it on such a machine."""
    if importlib.util.find_spec("PyInstaller") is None:
        return "PyInstaller not installed: pip install '.[package]' to build and smoke-run it"
    if os.environ.get("INT8_STUDIO_TEST_BUNDLE") == "0":
        return "INT8_STUDIO_TEST_BUNDLE=0: bundle build skipped"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_bundle_skip_reason() is not None, reason=_bundle_skip_reason() or "")
def test_bundle_builds_and_passes_the_smoke_run(assets: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "INT8_STUDIO_ASSETS": str(assets)}
    build = subprocess.run(
        ["bash", str(PACKAGING / "build.sh")], env=env, capture_output=True, text=True, timeout=1800
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    smoke = subprocess.run(
        ["bash", str(PACKAGING / "smoke.sh"), str(ROOT / "dist" / "int8-studio")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-3000:]
    assert "smoke: all passed" in smoke.stdout
