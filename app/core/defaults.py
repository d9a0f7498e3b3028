"""Defaults of the work the CLI and the GUI both start, declared once.

The command line's flags and the panels' first values read them from here, so `int8-studio
calibrate` and the Calibration panel start from the same method, percentile and sample.
"""

from __future__ import annotations

# calibration
CALIBRATION_METHOD = "percentile"
PERCENTILE = 99.999
CALIBRATION_SEED = 0
CALIBRATION_COUNT = 0  # 0: every image in the folder

# variants and evaluation
QUANTIZE_PRECISIONS = ("int8", "fp16")
QUANTIZE_TARGET = "ort-cpu"  # where the INT8 graph will run (decides Q/DQ placement)
VARIANTS = ("fp32", "fp16", "int8")
BACKEND = "ort-cpu"

# benchmark
BENCH_ITERATIONS = 200
BENCH_WARMUP = 20

# precision debugging
TARGET_DROP = 1.0
ANALYSIS_IMAGES = 8
MIXED_VARIANT_NAME = "int8-mp"
MAX_FLOAT_FRACTION = 0.15  # most compute ops the mixed-precision search may keep out of INT8

# downloads (the demo model)
DOWNLOAD_TIMEOUT_S = 30.0
