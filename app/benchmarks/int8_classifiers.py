"""ort-cpu INT8 of the classifiers among the assets, the default against the default without
each of QUANTIZE_VERSION 14's changes: "pools quantized" puts every AveragePool's output on its
input's grid, as ONNX Runtime's quantizer does (the default keeps a pool that narrows its range
float, `app.core.quant.pools`); "no range floors" leaves the calibrated ranges as they are (the
default floors a residual Add + Relu's inputs at minus the other input's maximum, and a SiLU's
input at -8, `app.core.quant.range_floors`). Logit SQNR against FP32 and top-1 agreement with
FP32, on images the calibration did not use. Prints a table last and writes JSON.

  * HaGRID crop classifier: calibrated on 64 coco-train128 photos, scored on photos-misc103,
    gesture-frames and imagenet-samples (no hand crops among the assets: its logits there are
    close calls, which makes agreement a strict test);
  * CIFAR-10 ResNet-8: calibrated on the even-numbered half of cifar10-test500, scored on the
    odd half;
  * MobileNetV1 0.25 (QAT): calibrated on 64 coco-train128 photos, scored on photos-misc103 and
    imagenet-samples;
  * EfficientNet-Lite0: calibrated on 64 coco-train128 photos, scored on photos-misc103,
    imagenet-samples and coco-val-dev64 (it has neither: a check that nothing else moved).

    python -m app.benchmarks.int8_classifiers --assets ../shared/assets [--json F]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.frames.sources import list_images
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.quantize import make_int8, quantize

# model folder or file under models/, calibration images, scored images (folders under images/)
CASES = [
    (
        "hagrid-hand-detector/crops_classifier.onnx",
        "coco-train128/images",
        ["photos-misc103", "gesture-frames", "imagenet-samples"],
    ),
    ("resnet8-cifar10", "cifar10-test500", None),  # None: the other half of the calibration set
    (
        "mobilenet-v1-0.25-128-imagenet",
        "coco-train128/images",
        ["photos-misc103", "imagenet-samples"],
    ),
    (
        "efficientnet-lite0-imagenet",
        "coco-train128/images",
        ["photos-misc103", "imagenet-samples", "coco-val-dev64/images"],
    ),
]
CALIBRATION_IMAGES = 64


def measure(assets: Path, work: Path, model: str, cal: str, evals: list[str] | None) -> dict:
    spec = inspect_model(assets / "models" / model)
    root = work / model.replace("/", "_")
    ws = Workspace.for_model(spec, root / "ws")
    pool = list_images(assets / "images" / cal)
    calibration = pool[::2][:CALIBRATION_IMAGES]
    scored = (
        pool[1::2]
        if evals is None
        else [f for e in evals for f in list_images(assets / "images" / e)]
    )
    folder = root / "cal"
    folder.mkdir(parents=True, exist_ok=True)
    for f in calibration:
        shutil.copy(f, folder / f"{f.parent.name}_{f.name}")
    calibrate(ws, folder)
    meta = quantize(ws, precisions=["int8"], target="ort-cpu")[0]
    paths = {"fp32": Path(spec.path), "default": ws.variant_path("int8")}
    ranges = latest_calibration(ws) / "ranges.json"
    for name, option in (("pools quantized", "float_pools"), ("no range floors", "range_floors")):
        paths[name] = root / f"{name.replace(' ', '-')}.onnx"
        make_int8(Path(spec.path), ranges, paths[name], "ort-cpu", **{option: False})
    sessions = {
        k: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        for k, p in paths.items()
    }
    pre = Preprocessor(spec.preprocess)
    signal = 0.0
    err = {k: 0.0 for k in paths if k != "fp32"}
    agree = dict.fromkeys(err, 0)
    for f in scored:
        x = np.array(pre(read_image(f))[0], copy=True)
        ref = sessions["fp32"].run(None, {spec.input_name: x})[0].astype(np.float64)
        signal += float((ref**2).sum())
        for k in err:
            out = sessions[k].run(None, {spec.input_name: x})[0].astype(np.float64)
            err[k] += float(((out - ref) ** 2).sum())
            agree[k] += int(out.argmax() == ref.argmax())
    return {
        "model": model,
        "calibration_images": len(calibration),
        "scored_images": len(scored),
        "pools_float": meta.get("pools_float", []),
        "range_floors": meta.get("range_floors"),
        "variants": {
            k: {
                "sqnr_db": round(10 * np.log10(signal / max(err[k], 1e-30)), 2),
                "top1_agreement": round(100 * agree[k] / len(scored), 1),
            }
            for k in err
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    setup_logging(False)
    report: dict[str, Any] = {"device": device_info(), "onnxruntime": ort.__version__, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        for model, cal, evals in CASES:
            report["cases"].append(measure(Path(args.assets), Path(tmp), model, cal, evals))
    rows = [
        (
            c["model"],
            k,
            c["scored_images"],
            v["sqnr_db"],
            v["top1_agreement"],
            ", ".join(c["pools_float"]) or "-",
        )
        for c in report["cases"]
        for k, v in c["variants"].items()
    ]
    save_json(args.json_out, report)
    cpu = report["device"].get("cpu", "?")
    print(f"ONNX Runtime {ort.__version__} CPU, {cpu}; ort-cpu INT8 against FP32")
    print(
        table(
            ["model", "int8", "images", "logit SQNR dB", "top-1 agreement %", "pools float"], rows
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
