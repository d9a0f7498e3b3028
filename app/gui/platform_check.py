"""Before Qt starts on X11: are the xcb plugin's system libraries there, and can the display be
reached? Qt itself aborts the process with a core dump in both cases ("Could not load the Qt
platform plugin "xcb""), naming neither the missing library nor the package that provides it."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from app.core.errors import UserError

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.M)


def debian_package(soname: str) -> str:
    """Debian/Ubuntu package of a shared library: libxcb-cursor.so.0 -> libxcb-cursor0,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0, libEGL.so.1 -> libegl1 (Debian's naming rule)."""
    name, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    if not version:
        return name.lower()
    return f"{name}-{version}".lower() if name[-1].isdigit() else f"{name}{version}".lower()


def missing_libraries(ldd_output: str) -> list[str]:
    """Shared libraries `ldd` could not find, in order, without repeats."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def xcb_plugin_files() -> list[Path]:
    """The xcb platform plugin and the Qt library it loads (where PySide6 installed them)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt"
    files = [
        qt / "plugins" / "platforms" / "libqxcb.so",
        *sorted((qt / "lib").glob("libQt6XcbQpa.so*")),
    ]
    return [f for f in files if f.is_file()][:2]


def _ldd(path: Path) -> str:
    try:
        return subprocess.run(
            ["ldd", str(path)], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def check_xcb_libraries() -> None:
    """UserError naming the missing libraries and the apt command that installs them."""
    if shutil.which("ldd") is None:
        return
    missing = missing_libraries("".join(_ldd(f) for f in xcb_plugin_files()))
    if missing:
        packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
        raise UserError(
            f"the desktop app needs system libraries that are missing: {', '.join(missing)}. "
            f"On Debian/Ubuntu: sudo apt-get install {packages} (other systems: the packages "
            "providing these files), then start it again"
        )


def check_display_reachable(display: str) -> Callable[[], None]:
    """UserError if the X server named by DISPLAY does not answer (Qt would abort); else the
    function that closes this check's connection, to be called once Qt has its own. Closed
    before, it can be the server's last client: Xvfb then resets, and Qt's connection made
    during the reset fails and aborts the process (2 of 6 screenshot runs under `xvfb-run`)."""
    lib = ctypes.util.find_library("xcb")
    if lib is None:
        return _nothing
    xcb = ctypes.CDLL(lib)
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    if not conn or xcb.xcb_connection_has_error(conn):
        if conn:
            xcb.xcb_disconnect(conn)
        raise UserError(
            f"cannot open the X display '{display}': start the app inside a desktop session "
            "(check DISPLAY), or set QT_QPA_PLATFORM=offscreen for a scripted run"
        )
    return lambda: xcb.xcb_disconnect(conn)


def _nothing() -> None:
    return None


def check_platform() -> Callable[[], None]:
    """Run the checks when Qt is about to use its xcb plugin (Linux with X11); returns what to
    call once the QApplication exists (it closes the display check's connection)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or (platform and not platform.startswith("xcb")):
        return _nothing
    display = os.environ.get("DISPLAY")
    if not display or (not platform and os.environ.get("WAYLAND_DISPLAY")):
        return _nothing
    check_xcb_libraries()
    return check_display_reachable(display)
