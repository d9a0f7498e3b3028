#!/usr/bin/env bash
# Packs what the desktop app's scripted mode needs on the GPU test machine, which has Python,
# numpy and OpenCV but no Qt and no desktop libraries: a minimal PySide6 (Core, Gui, Widgets,
# OpenGL, the offscreen platform plugin) taken from this machine's environment, pyqtgraph, and
# Debian's libGL/libEGL/fontconfig/freetype/glib/xkbcommon/dbus unpacked (not installed).
#   usage: bash packaging/device-gui-pack.sh [site-packages]   -> .gpu-qt/ (git-ignored)
# Then carry .gpu-qt once:  mkdir -p /tmp/qt && tar -xJf .gpu-qt/qtpack.tar.xz -C /tmp/qt
# and, with onnxruntime-gpu staged (../shared/tools/gpu-stage.sh): bash packaging/device-gui-run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sp="${1:-$(python -c 'import PySide6, os; print(os.path.dirname(os.path.dirname(PySide6.__file__)))')}"
work="$(mktemp -d)"
mkdir -p "$work/debs" "$work/site/PySide6/Qt/lib" "$work/site/PySide6/Qt/plugins/platforms" \
  "$work/sys"
(cd "$work/debs" && apt-get download libglvnd0 libgl1 libglx0 libegl1 libfontconfig1 \
  fontconfig-config libfreetype6 libpng16-16 libbrotli1 libglib2.0-0 libxkbcommon0 libdbus-1-3 \
  libexpat1 libpcre2-8-0 fonts-dejavu-core libx11-6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/sys"; done
cp "$sp"/PySide6/*.py "$work/site/PySide6/"
for m in QtCore QtGui QtWidgets QtOpenGL QtOpenGLWidgets; do
  cp "$sp/PySide6/$m.abi3.so" "$work/site/PySide6/"
done
cp "$sp"/PySide6/libpyside6.abi3.so.* "$work/site/PySide6/"
for lib in Core Gui Widgets DBus OpenGL OpenGLWidgets; do
  cp "$sp/PySide6/Qt/lib/libQt6$lib.so.6" "$work/site/PySide6/Qt/lib/"
done
cp "$sp"/PySide6/Qt/lib/libicu*.so.* "$work/site/PySide6/Qt/lib/"
cp "$sp/PySide6/Qt/plugins/platforms/libqoffscreen.so" "$work/site/PySide6/Qt/plugins/platforms/"
cp -r "$sp/shiboken6" "$sp/pyqtgraph" "$work/site/"
mkdir -p .gpu-qt
tar -C "$work" -cJf .gpu-qt/qtpack.tar.xz site sys
rm -rf "$work"
ls -la .gpu-qt
