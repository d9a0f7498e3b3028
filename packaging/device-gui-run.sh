#!/usr/bin/env bash
# The desktop app's scripted live view on the GPU test machine (Qt offscreen, the libraries that
# packaging/device-gui-pack.sh packed, unpacked under /tmp/qt). Reports go to $OUT.
export QT_QPA_PLATFORM=offscreen
export LD_LIBRARY_PATH=/tmp/qt/sys/usr/lib/x86_64-linux-gnu:/tmp/qt/sys/lib/x86_64-linux-gnu
export PYTHONPATH=/tmp/site:/tmp/pylib:/tmp/qt/site:$PWD
export INT8_STUDIO_CACHE=/tmp/i8cache
M=/tmp/assets/models/yolox-nano-coco
V=/tmp/assets/videos/one-by-one-person-detection.mp4
python3 -c "from PySide6.QtWidgets import QApplication; import pyqtgraph; print('qt ok')" || exit 3
python3 -m app calibrate --model $M --images /tmp/assets/images/coco-val-dev64/images --count 8 \
  --method minmax --workspace /tmp/wsq > /dev/null && \
  python3 -m app quantize --workspace /tmp/wsq --precision fp16 > /dev/null || exit 4
run() {  # name backend variant frames iterations
  python3 -m app.gui.scripted --model $M --source $V --frames $4 --rounds 4 --fast \
    --report $OUT/gui_$1.json --exit-after --throughput-iterations $5 --backend $2 \
    --variants $3 --workspace /tmp/wsq 2>&1 | grep -v "^QFont\|propagateSize" | tail -3
}
run cpu_fp32 ort-cpu fp32 300 100
run cuda_fp16 ort-cuda fp16 1000 1000
run cuda_fp32 ort-cuda fp32 1000 1000
python3 - <<'PY'
import json, os
for n in ("cpu_fp32", "cuda_fp16", "cuda_fp32"):
    p = os.path.join(os.environ["OUT"], f"gui_{n}.json")
    if not os.path.exists(p):
        print(n, "no report"); continue
    r = json.load(open(p))
    print(n, "fps", r["fps"], "rounds", r.get("round_fps"), "backend windows",
          r.get("backend_infer_fps_windows"), "ratio rounds", r.get("fps_vs_backend_rounds"),
          "median", r.get("fps_vs_backend"), "headless pipeline windows",
          r.get("headless_pipeline_fps_windows"), "vs headless rounds",
          r.get("fps_vs_headless_pipeline_rounds"), "median", r.get("fps_vs_headless_pipeline"),
          "stall", r["gui_blocked_max_ms"],
          "processed", r["frames_processed"], "shown", r["frames_shown"], "shown_fps",
          r.get("shown_fps"), "cpu", r.get("cpu_ms_per_frame"), "stalls", r.get("gui_stalls"))
PY
