"""TensorRT's native calibration-cache text format (what IInt8Calibrator caches and what ORT's
TensorRT provider reads with `trt_int8_use_native_calibration_table`).

Line 1 `TRT-<version>-<Algo>`, then `<tensor>: <hex of float32 scale = amax / 127>`. Written by
hand because neither TensorRT (not installable here) nor ONNX Runtime's quantization tools write it.
"""

from __future__ import annotations

import struct
from pathlib import Path

from app.core.atomic import write_text

ALGO = {
    "entropy": "EntropyCalibration2",
    "minmax": "MinMaxCalibration",
    "percentile": "EntropyCalibration2",
    "distribution": "EntropyCalibration2",
}
DEFAULT_TRT_VERSION = 101400  # 10.14.0 encoded as major*10000 + minor*100 + patch


def encode_scale(amax: float) -> str:
    return struct.pack(">f", max(amax, 1e-12) / 127.0).hex()


def decode_scale(hex_text: str) -> float:
    """amax from a cache line's hex scale."""
    return struct.unpack(">f", bytes.fromhex(hex_text))[0] * 127.0


def write_trt_native_cache(
    path: Path, amax: dict[str, float], method: str, trt_version: int = DEFAULT_TRT_VERSION
) -> None:
    lines = [f"TRT-{trt_version}-{ALGO.get(method, 'EntropyCalibration2')}"]
    lines += [
        f"{name}: {encode_scale(value)}" for name, value in sorted(amax.items()) if ":" not in name
    ]  # ORT's reader splits at the first ':'
    write_text(path, "\n".join(lines) + "\n")


def read_trt_native_cache(path: Path) -> tuple[str, dict[str, float]]:
    text = Path(path).read_text(encoding="ascii").splitlines()
    if not text or not text[0].startswith("TRT-"):
        raise ValueError(f"{path}: not a TensorRT calibration cache (no TRT- header)")
    table = {}
    for line in text[1:]:
        if line.strip():
            name, _, value = line.partition(":")
            table[name.strip()] = decode_scale(value.strip())
    return text[0], table
