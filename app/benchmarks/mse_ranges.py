"""Issue-17 candidate, measured and not adopted: activation ranges chosen per tensor to minimise
the expected squared error of uint8 asymmetric quantization (clipping plus rounding, from the
calibration histograms; the idea of PyTorch's HistogramObserver), for YOLOX-Nano's ort-cpu
INT8, scored on the int8_unseen protocol against the default (Percentile 99.999).

ONNX Runtime's calibrators offer MinMax, Entropy, Percentile and Distribution, none of them
this; the search is written here (a grid over each end of the range, vectorised with cumulative
sums). The calibration images, channel means and sensitive blocks are the default's.

    python -m app.benchmarks.mse_ranges --assets ../shared/assets --workdir W [--json F]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from app.benchmarks import int8_unseen as unseen
from app.cli.main import setup_logging
from app.cli.output import save_json
from app.core.eval.bench import device_info
from app.core.quant.calibration import write_tables
from app.core.quant.calibration_images import CalibrationReader, select_images
from app.core.quant.quantize import make_int8
from app.core.quant.ranges import collect_ranges, compute_part_tensors

LEVELS = 255  # uint8 steps
SHRINK = np.linspace(0.15, 1.0, 52)  # candidate ends: the observed end times these


def mse_range(hist: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """(lo, hi) minimising clipping error + rounding error (step^2 / 12 per value inside) for
    LEVELS steps over a histogram with bin `edges`; zero stays inside the range."""
    h = hist.astype(np.float64)
    c = (edges[:-1] + edges[1:]) / 2
    nz = np.nonzero(h)[0]
    if nz.size == 0:
        return 0.0, 0.0
    mn, mx = c[nz[0]], c[nz[-1]]
    los = mn * SHRINK if mn < 0 else np.array([mn])
    his = mx * SHRINK if mx > 0 else np.array([mx])
    n, sx, sxx = np.cumsum(h), np.cumsum(h * c), np.cumsum(h * c * c)

    def upto(a: np.ndarray, v: np.ndarray | float) -> np.ndarray:  # sums over centres <= v
        i = np.searchsorted(c, v, side="right") - 1
        return np.where(i >= 0, a[np.clip(i, 0, None)], 0.0)

    best = (np.inf, mn, mx)
    for lo in los:
        hi = his[his > lo]
        if hi.size == 0:
            continue
        nb, xb, xxb = upto(n, lo), upto(sx, lo), upto(sxx, lo)
        na, xa, xxa = n[-1] - upto(n, hi), sx[-1] - upto(sx, hi), sxx[-1] - upto(sxx, hi)
        err = (
            (xxb - 2 * lo * xb + lo * lo * nb)
            + (xxa - 2 * hi * xa + hi * hi * na)
            + (n[-1] - nb - na) * ((hi - lo) / LEVELS) ** 2 / 12
        )
        k = int(np.argmin(err))
        if err[k] < best[0]:
            best = (float(err[k]), float(lo), float(hi[k]))
    return min(best[1], 0.0), max(best[2], 0.0)


def mse_calibration(ws: Any, default: Path, images: Path) -> Path:
    """A calibration folder beside `default` with MSE ranges over the same images."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    spec = ws.spec()
    files, _ = select_images(images, None, None, 0)
    tensors = compute_part_tensors(Path(spec.path))
    reader = CalibrationReader(spec, files, batch=1)
    # the Entropy collection keeps each tensor's signed histogram and its edges
    hists = collect_ranges(Path(spec.path), spec.input_name, reader, "entropy", tensors)
    ranges = {
        t: tuple(np.float32(v) for v in mse_range(np.asarray(d.hist), np.asarray(d.bins)))
        for t, d in hists.data.items()
    }
    folder = default.parent / f"{default.name}-mse"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    write_tables(TensorsData(CalibrationMethod.MinMax, ranges), folder, "minmax")
    for name in ("channel_means.json", "sensitive_blocks_ort-cpu.json"):
        if (default / name).is_file():
            shutil.copy(default / name, folder / name)
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--workdir", required=True, help="the int8_unseen workdir (reused)")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    setup_logging(False)
    assets, work = Path(args.assets).resolve(), Path(args.workdir)
    ws, calibration = unseen.yolox_workspace(assets, work)
    folder = mse_calibration(ws, calibration, assets / "images" / "coco-train128" / "images")
    spec = ws.spec()
    meta = make_int8(
        Path(spec.path), folder / "ranges.json", ws.variant_path("int8-mse"), "ort-cpu"
    )
    ws.record_variant("int8-mse", {"precision": "int8", "target": "ort-cpu", **meta})
    names = ["fp32", "int8", "int8-mse"]
    results = unseen.score(ws, names, unseen.protocol_folders(assets, work))
    report = {
        "device": device_info(),
        "protocol": unseen.FOLDERS,
        "variants": names,
        "images": {role: r["images"] for role, r in results.items()},
        "variant_meta": unseen.variant_notes(ws, names),
        "summary": unseen.summary(results),
    }
    save_json(args.json_out, report)
    unseen.print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
