#!/usr/bin/env bash
# Build the one-folder bundle dist/int8-studio/ (executable dist/int8-studio/int8-studio).
#
#   packaging/build.sh              use $PYTHON, else the active virtualenv, else make
#                                   build/package-venv and `pip install ".[package]"` into it
#   PYTHON=/path/to/python packaging/build.sh
#
# Build artifacts go to build/ and dist/ (both git-ignored). Build on the oldest Linux you
# support: the bundle needs a glibc at least as new as the build machine's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
    PY="$VIRTUAL_ENV/bin/python"
else
    VENV="$ROOT/build/package-venv"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "build.sh: creating $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/python" -m pip install --upgrade pip
    fi
    PY="$VENV/bin/python"
    "$PY" -m pip install "${ROOT}[package]"
fi

# PyInstaller builds from the environment it runs in: that one must have the app's dependencies.
if ! "$PY" -c "import PySide6, onnxruntime, cv2, onnx, pyqtgraph, platformdirs" 2>/dev/null; then
    echo "build.sh: $PY lacks the app's dependencies; run: $PY -m pip install '${ROOT}[package]'" >&2
    exit 1
fi
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    "$PY" -m pip install "pyinstaller>=6.10"
fi

start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean \
    --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" \
    "$ROOT/packaging/int8-studio.spec"
end=$(date +%s)

BUNDLE="$ROOT/dist/int8-studio"
echo
echo "bundle:     $BUNDLE"
echo "executable: $BUNDLE/int8-studio"
echo "size:       $(du -sh "$BUNDLE" | cut -f1) ($(du -sb "$BUNDLE" | cut -f1) bytes)"
echo "build time: $((end - start)) s"
