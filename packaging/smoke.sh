#!/usr/bin/env bash
# Smoke-test the built bundle on the real model and video in ../shared/assets, headless.
#
#   packaging/smoke.sh [BUNDLE_DIR]      default: dist/int8-studio
#
# Runs from an empty temporary folder with PYTHONPATH cleared, so nothing from the checkout or a
# virtualenv can stand in for what the bundle lacks. Exits non-zero at the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLE="$(cd "${1:-$ROOT/dist/int8-studio}" && pwd)"
EXE="$BUNDLE/int8-studio"
ASSETS="${INT8_STUDIO_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}"
MODEL="$ASSETS/models/yolox-nano-coco/yolox_nano.onnx"
VIDEO="$ASSETS/videos/bottle-detection.mp4"

[[ -x "$EXE" ]] || { echo "smoke: no executable at $EXE (run packaging/build.sh)" >&2; exit 1; }
[[ -f "$MODEL" && -f "$VIDEO" ]] || { echo "smoke: assets not found at $ASSETS" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
export QT_QPA_PLATFORM=offscreen
# Keep the bundle's workspaces and demo download out of the user's real data folder.
export XDG_DATA_HOME="$WORK/data" XDG_CONFIG_HOME="$WORK/config" XDG_CACHE_HOME="$WORK/cache"

step() { echo; echo "== $*"; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }
seconds() { local t0=$1; echo "$(( $(date +%s) - t0 )) s"; }

step "--version"
"$EXE" --version | tee version.txt
grep -q "^int8-studio " version.txt || fail "--version"

step "every bundled library finds the Qt libraries it links to"
# CUDA, TensorRT, GTK and Wayland client libraries are the system's to provide; Qt is ours.
INTERNAL="$BUNDLE/_internal"
missing=$(find "$INTERNAL" -name "*.so*" -type f -print0 \
    | LD_LIBRARY_PATH="$INTERNAL" xargs -0 -n 50 ldd 2>/dev/null \
    | grep -E "lib(Qt6|pyside6|shiboken6)[^ ]* => not found" | sort -u) || true
[[ -z "$missing" ]] || fail "bundled libraries miss: $missing"
dangling=$(find "$BUNDLE" -xtype l)
[[ -z "$dangling" ]] || fail "dangling links in the bundle: $dangling"
echo "ok"

step "backends (ONNX Runtime loads; GPU backends explain why not)"
"$EXE" backends | tee backends.txt
grep -qi "ort-cpu" backends.txt || fail "backends lists no ort-cpu"

step "inspect (bundled presets and labels are found)"
"$EXE" inspect --model "$MODEL" | tee inspect.txt
grep -qi "yolox" inspect.txt || fail "inspect did not recognise the YOLOX preset"

step "run: 20 frames of the video, headless, JSON report"
t0=$(date +%s)
"$EXE" run --model "$MODEL" --source "$VIDEO" --max-frames 20 --json run.json --output out
echo "(took $(seconds "$t0"))"
frames=$(grep -o '"frame":' run.json | wc -l)
[[ "$frames" -eq 20 ]] || fail "run.json has $frames frames, expected 20"
grep -q '"label": "bottle"' run.json || fail "no bottle detected in the bottle video"
ls out/*.mp4 >/dev/null || fail "no annotated video written"

step "run on openvino-cpu: OpenVINO and its CPU plugin are bundled"
grep -Eq "openvino-cpu +yes" backends.txt || fail "backends says openvino-cpu is unavailable"
"$EXE" run --model "$MODEL" --source "$VIDEO" --max-frames 5 --backend openvino-cpu --json run-ov.json
grep -q '"provider": "OpenVINO CPU"' run-ov.json || fail "run-ov.json does not say OpenVINO ran"
grep -q '"label": "bottle"' run-ov.json || fail "no bottle detected on openvino-cpu"

step "gui: scripted mode on the offscreen platform (10 frames, screenshot, report)"
t0=$(date +%s)
"$EXE" gui --model "$MODEL" --source "$VIDEO" --frames 10 \
    --screenshot shot.png --report gui.json --exit-after
echo "(took $(seconds "$t0"))"
[[ -s shot.png ]] || fail "no screenshot"
head -c 8 shot.png | od -An -c | grep -q "P   N   G" || fail "screenshot is not a PNG"
# Real-time playback drops (never processes) frames the CPU cannot keep up with; of the frames
# processed, those the screen had no refresh for are not drawn: the counts must add up to 10.
num() { grep -o "\"$1\": [0-9]*" gui.json | grep -o '[0-9]*$'; }
processed=$(num frames_processed); shown=$(num frames_shown)
not_shown=$(num frames_not_shown); dropped=$(num frames_dropped)
echo "frames processed $processed (shown $shown, not shown $not_shown), dropped $dropped"
[[ "$shown" -ge 1 && $((shown + not_shown)) -eq "$processed" && $((processed + dropped)) -eq 10 ]] \
    || fail "gui report: $processed processed ($shown shown, $not_shown not), $dropped dropped"
cp shot.png "${SMOKE_SCREENSHOT:-/dev/null}" 2>/dev/null || true

if command -v xvfb-run >/dev/null; then
    step "gui on the xcb platform (a real X server: Xvfb)"
    QT_QPA_PLATFORM=xcb xvfb-run -a "$EXE" gui --model "$MODEL" --screenshot xcb.png --exit-after
    [[ -s xcb.png ]] || fail "no screenshot on xcb"
    echo "ok"
else
    echo; echo "== (xvfb-run not installed: xcb platform not tried)"
fi

if "$EXE" --help | grep -q "fetch-demo"; then
    step "fetch-demo from a local file:// URL (no network)"
    "$EXE" fetch-demo --url "file://$MODEL" --dest demo | tee fetch.txt
    grep -q "demo/yolox_nano.onnx" fetch.txt || fail "fetch-demo did not print the model path"
    [[ -s demo/coco-colormap.json ]] || fail "fetch-demo wrote no colormap"
fi

echo
echo "smoke: all passed ($BUNDLE)"
