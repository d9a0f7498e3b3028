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
# fp32-prep: FP32 with the Focus-stem fold INT8 gets (`quant.prepared_fp32`); not made where there
# is nothing to fold
PREPARED_FP32 = "fp32-prep"
QUANTIZE_PRECISIONS = ("int8", "fp16", PREPARED_FP32)
QUANTIZE_TARGET = "ort-cpu"  # where the INT8 graph will run (decides Q/DQ placement)
VARIANTS = ("fp32", "fp16", "int8")  # the variants TensorRT engines are built for (`build`)
# lists start with these; Results ticks them
VARIANT_ORDER = ("fp32", PREPARED_FP32, "fp16", "int8")
BACKEND = "ort-cpu"

# benchmark
BENCH_ITERATIONS = 200
BENCH_WARMUP = 20

# precision debugging
TARGET_DROP = 1.0
ANALYSIS_IMAGES = 8
MIXED_VARIANT_NAME = "int8-mp"
# Most compute ops the mixed-precision search may keep out of INT8, those every graph of the
# target keeps float (ORT CPU: the prediction heads) included: issue 17's bar.
MAX_FLOAT_FRACTION = 0.10
# Agreement with FP32 a mixed-precision trial must reach on the search images (detector: mAP50-95
# against FP32's detections; classifier: top-1 agreement %): issue 17's bars for INT8.
MIN_AGREEMENT = {"detection": 92.0, "classification": 98.0}

# downloads (the demo model)
DOWNLOAD_TIMEOUT_S = 30.0
