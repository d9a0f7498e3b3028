"""Without the xcb plugin's system libraries or a reachable X display, the app says what is
missing in one line (issue 18: Qt aborted with 'Could not load the Qt platform plugin "xcb"')."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.gui.platform_check import debian_package, missing_libraries, xcb_plugin_files
from tests.assets import ROOT


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libEGL.so.1", "libegl1"),
    ],
)
def test_library_names_map_to_the_debian_packages_that_ship_them(soname, package):
    assert debian_package(soname) == package


def test_ldd_output_of_the_real_plugin_is_read():
    files = xcb_plugin_files()
    assert files and files[0].name == "libqxcb.so"
    out = subprocess.run(["ldd", str(files[0])], capture_output=True, text=True).stdout
    listed = [line.split()[0] for line in out.splitlines() if "not found" in line]
    assert missing_libraries(out) == list(dict.fromkeys(listed))
    assert missing_libraries("\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6\n") == [
        "libfoo.so.1"
    ]


def test_starting_on_an_unusable_x_display_is_one_line_not_a_core_dump(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=":87", XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "app.gui.app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "apt-get install libxcb" in lines[0] or "cannot open the X display ':87'" in lines[0]
