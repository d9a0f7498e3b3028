"""INT8 Studio: calibrate, quantize, build and compare vision models (ONNX Runtime, TensorRT)."""

from __future__ import annotations

import os

__version__ = "0.1.0"

# OpenCV's and FFmpeg's own console lines ("[mov,mp4 @ 0x..] moov atom not found", "[ WARN:0]
# global cap_v4l.cpp ...") reach the terminal beside the app's one-line message about the same
# file; the app says what it could not read itself. Set before cv2 is first imported; a value
# the user set is kept.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
