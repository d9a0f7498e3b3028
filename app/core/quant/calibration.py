"""Calibration: sample the user's images, feed them through the model's own preprocessing, collect
activation ranges, and write the tables TensorRT and ONNX Runtime's TensorRT provider read.

Results live in `<workspace>/calibration/<key>/`, where the key covers the model hash, the
preprocessing, the exact image list and the method. The folder is assembled under a temporary
name and renamed into place only when complete, so a cancelled or failed run leaves nothing that
looks valid; a reused folder is checked file by file against the hashes in its meta.json.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.core.atomic import write_json
from app.core.errors import CancelToken, UserError
from app.core.frames.imageio import os_error_reason
from app.core.frames.sources import Skipped
from app.core.model.files import file_sha256, known_sha256
from app.core.model.spec import ModelSpec
from app.core.model.workspace import Workspace, cache_key
from app.core.quant.calibration_images import (
    CalibrationReader,
    few_images_warnings,
    select_images,
)
from app.core.quant.trt_table import write_trt_native_cache
from app.core.safe_json import load_json

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile", "distribution")
CALIBRATION_VERSION = 1  # bump when the collection math changes: old caches stop matching
Progress = Callable[[float, str], None]


@dataclass
class CalibrationResult:
    key: str
    folder: Path
    method: str
    images_used: list[str]
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0
    reused: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ranges_path(self) -> Path:
        return self.folder / "ranges.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "folder": str(self.folder),
            "method": self.method,
            "images": len(self.images_used),
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "seconds": round(self.seconds, 2),
            "images_per_s": round(self.images_per_s, 2),
            "reused": self.reused,
            "warnings": self.warnings,
            "tables": {
                "flatbuffers": str(self.folder / "calibration.flatbuffers"),
                "cache": str(self.folder / "calibration.cache"),
                "json": str(self.folder / "calibration.json"),
                "tensorrt_native": str(self.folder / "calibration_trt.cache"),
            },
        }


def calibration_key(
    spec: ModelSpec, files: list[Path], method: str, settings: dict, skipped: list[Skipped]
) -> str:
    """Key of model, preprocessing, image list (path and content hash), method and settings;
    files that vanished since they were listed move from `files` to `skipped`.

    The images' content, not their modification times, so a folder copied back, synced or
    checked out again (new mtimes, same bytes) reuses its calibration and every INT8 build made
    from it; an image edited in place gets a new key."""
    listing = []
    for p in list(files):
        try:
            st = p.stat()
            # a FIFO or device would block the hash forever; the reader skips it, saying what
            digest = known_sha256(p, st) if stat.S_ISREG(st.st_mode) else "not a regular file"
        except OSError as exc:
            files.remove(p)
            skipped.append(Skipped(str(p), os_error_reason(p, exc)))
            continue
        listing.append((str(p), digest))
    return cache_key(
        "calibration",
        CALIBRATION_VERSION,
        spec.sha256,
        spec.preprocess_key(),
        listing,
        method,
        settings,
    )


def _load_existing(folder: Path, model_sha256: str | None = None) -> dict[str, Any] | None:
    """meta.json of a finished calibration folder if every file still matches its hash (and,
    when given, it was made for that model)."""
    try:
        meta = load_json(folder / "meta.json")
        if model_sha256 is not None and meta.get("model_sha256") != model_sha256:
            return None
        files = meta["files"]
        if not isinstance(files, dict) or not files:
            return None
        for name, digest in files.items():
            if Path(name).name != name or file_sha256(folder / name) != digest:
                return None
        return meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def calibrate(
    ws: Workspace,
    images_dir: str | Path,
    *,
    count: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    method: str = "percentile",
    percentile: float = 99.999,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> CalibrationResult:
    """Collect activation ranges for `ws`'s model on images from `images_dir` (see module doc)."""
    from app.core.quant.ranges import collect_ranges, compute_part_tensors

    if method not in METHODS:
        raise UserError(
            f"unknown calibration method '{method}'; choose one of {', '.join(METHODS)}"
        )
    if not (math.isfinite(percentile) and 0.0 < percentile <= 100.0):
        raise UserError(
            f"percentile {percentile} is not a percentage: give a value above 0 and at most 100 "
            "(99.999 is the default)"
        )
    cancel = cancel or CancelToken()
    progress = progress or (lambda f, m: None)
    spec = ws.spec()
    # (its few-images warning is made again below, on the images read: some may not be)
    files, _ = select_images(images_dir, count, fraction, seed)
    warnings: list[str] = []
    settings = {"percentile": percentile}
    vanished: list[Skipped] = []
    key = calibration_key(spec, files, method, settings, vanished)
    if not files:
        raise UserError(f"{images_dir}: every selected image disappeared while reading")
    final = ws.path("calibration", key)
    meta = _load_existing(final, spec.sha256) if final.is_dir() else None
    if meta is not None:
        log.info("calibration %s reused (same model, preprocessing, images and method)", key)
        _mark_latest(ws, key, method)
        progress(1.0, "reused cached calibration")
        return CalibrationResult(
            key,
            final,
            method,
            meta["images_used"],
            [Skipped(**s) for s in meta["skipped"]],
            meta["seconds"],
            meta["images_per_s"],
            True,
            count_warnings(spec, len(meta["images_used"]), len(files)) + warnings,
        )
    if final.exists():
        log.warning("calibration %s is damaged or incomplete; rebuilding it", key)
        warnings.append(f"cached calibration {key} was damaged and has been rebuilt")
        _remove_damaged(final)
    t0 = time.perf_counter()
    batch = 1 if isinstance(spec.input_shape[0], int) else 8
    reader = CalibrationReader(spec, files, batch=batch, cancel=cancel)
    reader.skipped += vanished

    # MinMax is done when the last image is read; the other methods then bin every kept input
    # again and search thresholds (25 of 40 s for YOLOX-Nano), so that phase gets its own share
    # and its own estimate instead of a bar parked at 95% "0 s left".
    reading = 0.95 if method == "minmax" else 0.8
    last_read = [t0]  # when the last image was read: the start of the ranges phase

    def on_batch() -> None:
        last_read[0] = time.perf_counter()
        elapsed = last_read[0] - t0
        rate = reader.done / elapsed if elapsed > 0 else 0.0
        left = (len(files) - reader.done) / rate if rate > 0 else 0.0
        progress(
            reader.done / len(files) * reading,
            f"{reader.done}/{len(files)} images, {rate:.1f} img/s, {left:.0f} s left",
        )

    def on_ranges(fraction: float, what: str) -> None:
        elapsed = time.perf_counter() - last_read[0]
        left = f"{elapsed / fraction * (1 - fraction):.0f} s left" if fraction > 0 else "starting"
        progress(
            reading + (0.95 - reading) * fraction,
            f"computing {method} ranges ({what}), {fraction:.0%}, {left}",
        )

    tensors = compute_part_tensors(Path(spec.path))
    ranges = collect_ranges(
        Path(spec.path),
        spec.input_name,
        reader,
        method,
        tensors,
        percentile=percentile,
        on_batch=on_batch,
        on_ranges=on_ranges,
        cancel=cancel,
    )
    if not reader.used:
        raise UserError(
            f"{images_dir}: none of the {len(files)} selected images could be read "
            f"(first problem: {reader.skipped[0].source}: {reader.skipped[0].reason})"
        )
    cancel.check()
    progress(0.97, "writing calibration tables")
    seconds = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".part", dir=final.parent))
    try:
        write_tables(ranges, tmp, method)
        files_meta = {p.name: file_sha256(p) for p in sorted(tmp.iterdir())}
        meta = {
            "key": key,
            "model_sha256": spec.sha256,
            "method": method,
            "settings": settings,
            "images_dir": str(images_dir),
            "images_used": reader.used,
            "skipped": [s.__dict__ for s in reader.skipped],
            "seconds": round(seconds, 3),
            "images_per_s": round(len(reader.used) / seconds, 3) if seconds else 0.0,
            "files": files_meta,
        }
        write_json(tmp / "meta.json", meta)
        cancel.check()
        try:
            tmp.rename(final)
        except OSError:
            # another job calibrated the same key meanwhile: keep its (identical) result
            shutil.rmtree(tmp, ignore_errors=True)
            if _load_existing(final, spec.sha256) is None:
                raise UserError(
                    f"{final}: another calibration is writing this result; try again when it "
                    "has finished"
                ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _mark_latest(ws, key, method)
    progress(1.0, f"calibrated on {len(reader.used)} images in {seconds:.1f} s")
    warnings = count_warnings(spec, len(reader.used), len(files)) + warnings
    return CalibrationResult(
        key,
        final,
        method,
        reader.used,
        reader.skipped,
        seconds,
        len(reader.used) / seconds if seconds else 0.0,
        False,
        warnings,
    )


def count_warnings(spec: ModelSpec, used: int, chosen: int) -> list[str]:
    """The few-images warning; for a model already INT8, what its calibration does not do
    instead (advising 200 images for ranges no variant is made from misled: the COCO SSD)."""
    import onnx

    from app.core.model.checks import already_int8_note, quantized_node_count

    quantized = quantized_node_count(onnx.load(str(spec.path), load_external_data=False))
    if quantized:
        return [f"{already_int8_note(Path(spec.path), quantized)}; these ranges make none"]
    return few_images_warnings(used, chosen)


def _mark_latest(ws: Workspace, key: str, method: str) -> None:
    """Make `key` the calibration that `quantize` uses: the last one asked for, built or reused."""
    write_json(ws.path("calibration", "latest.json"), {"key": key, "method": method})


def _remove_damaged(folder: Path) -> None:
    """Remove a damaged calibration folder; another job rebuilding the same key may remove it
    first, so it is moved aside under a unique name before it is deleted."""
    aside = folder.with_name(f".{folder.name}.{os.getpid()}.{time.monotonic_ns()}.damaged")
    try:
        folder.rename(aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def write_tables(ranges: Any, folder: Path, method: str) -> None:
    """ranges.json (for Q/DQ quantization) plus the three tables the tutorials write, plus a
    TensorRT-native cache for the native calibrator and `trt_int8_use_native_calibration_table`."""
    from onnxruntime.quantization.calibrate import save_tensors_data
    from onnxruntime.quantization.quant_utils import write_calibration_table

    save_tensors_data(ranges, folder / "ranges.json")
    write_calibration_table(ranges, dir=str(folder))
    amax = {}
    for name, data in ranges.items():
        lo, hi = (float(np.asarray(v).ravel()[0]) for v in data.range_value)
        amax[name] = max(abs(lo), abs(hi))
    write_trt_native_cache(folder / "calibration_trt.cache", amax, method)


def latest_calibration(ws: Workspace) -> Path:
    """The folder of the last successful calibration in `ws`."""
    try:
        key = load_json(ws.root / "calibration" / "latest.json")["key"]
        if not isinstance(key, str) or Path(key).name != key:
            raise ValueError("bad key")
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(
            f"{ws.root}: no calibration yet; run `int8-studio calibrate` first"
        ) from exc
    return check_calibration(ws, ws.root / "calibration" / key)


def check_calibration(ws: Workspace, folder: Path) -> Path:
    """`folder` if it is an intact calibration of this workspace's model, else UserError."""
    if _load_existing(folder) is None:
        raise UserError(f"{folder}: calibration is missing or damaged; run `calibrate` again")
    if _load_existing(folder, ws.spec().sha256) is None:
        raise UserError(
            f"{folder}: this calibration was made for another model; run `calibrate` again"
        )
    return folder
