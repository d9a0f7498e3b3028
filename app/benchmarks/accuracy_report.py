"""Issue-3 figures in one run: every calibrator on YOLOX-Nano (COCO mAP on val photos it was not
calibrated on), FP16, the three Q/DQ layouts (ort-cpu, TensorRT, OpenVINO), ResNet-8 and
MobileNet top-1 (the OpenVINO layout also run on OpenVINO), calibration speed, and the INT8/FP32
latency ratio on ONNX Runtime CPU measured interleaved.

    python -m app.benchmarks.accuracy_report --assets ../shared/assets [--json F] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

from app.backends.factory import make_runner
from app.backends.onnxrt import OrtRunner
from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.eval.evaluate import evaluate
from app.core.frames.imageio import read_image
from app.core.frames.preprocess import Preprocessor
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import METHODS, calibrate
from app.core.quant.quantize import quantize
from app.core.timing import percentiles


def interleaved_p50(paths: dict[str, Path], feed, iterations: int = 200) -> dict[str, float]:
    """p50 latency of several graphs timed in turns, so machine load hits them alike."""
    runners = {k: OrtRunner(p).open() for k, p in paths.items()}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for r in runners.values():
        for _ in range(10):
            r.infer(feed)
    for _ in range(iterations):
        for k, r in runners.items():
            t0 = time.perf_counter()
            r.infer(feed)
            times[k].append((time.perf_counter() - t0) * 1e3)
    for r in runners.values():
        r.close()
    return {k: percentiles(v)["p50"] for k, v in times.items()}


def yolox(assets: Path, tmp: Path, methods: list[str], report: dict) -> list[tuple]:
    spec = inspect_model(assets / "models" / "yolox-nano-coco")
    ws = Workspace.for_model(spec, tmp / "yolox")
    calib_dir = assets / "images" / "coco-train128" / "images"
    rows, names = [], ["fp32", "fp16"]
    quantize(ws, precisions=["fp16"])
    for method in methods:
        result = calibrate(ws, calib_dir, method=method)
        report.setdefault("calibration_speed", {})[method] = {
            "images": len(result.images_used),
            "seconds": round(result.seconds, 1),
            "images_per_s": round(result.images_per_s, 2),
        }
        for target, prefix in (
            ("ort-cpu", "int8"),
            ("tensorrt", "int8-trt"),
            ("openvino", "int8-ov"),
        ):
            name = f"{prefix}-{method}"
            quantize(
                ws, precisions=["int8"], target=target, calibration=result.folder, variant_name=name
            )
            names.append(name)
    val = assets / "images" / "coco-val-dev64" / "images"
    ev = evaluate(ws, val, variants=names, runner_factory=make_runner)
    report["yolox"] = ev
    fp32 = next(v for v in ev["variants"] if v["name"] == "fp32")["metrics"]["mAP50_95"]
    for v in ev["variants"]:
        m = v["metrics"]
        rows.append(
            (
                "YOLOX-Nano",
                v["name"],
                "mAP50-95",
                m["mAP50_95"],
                round(m["mAP50_95"] - fp32, 2),
                m["mAP50"],
            )
        )
    frame = read_image(assets / "images" / "photos-misc103" / "dog_0.jpg")
    feed = Preprocessor(spec.preprocess)(frame)[0].copy()
    default = "int8-percentile" if "percentile" in methods else names[2]
    lat = interleaved_p50({"fp32": Path(spec.path), "int8": ws.variant_path(default)}, feed)
    report["cpu_latency_p50_ms"] = {
        **lat,
        "int8_over_fp32": round(lat["int8"] / lat["fp32"], 3),
        "variant": default,
    }
    return rows


def classifier(name: str, model: Path, cal: Path, val: Path, tmp: Path, report: dict) -> list:
    spec = inspect_model(model)
    ws = Workspace.for_model(spec, tmp / name)
    calibrate(ws, cal)
    quantize(ws, precisions=["int8", "fp16"])
    quantize(ws, precisions=["int8"], target="tensorrt")
    quantize(ws, precisions=["int8"], target="openvino")
    variants = ["fp32", "fp16", "int8", "int8-trt", "int8-ov"]
    ev = evaluate(ws, val, variants=variants, runner_factory=make_runner)
    report[name] = ev
    on_ov = evaluate(
        ws, val, variants=["fp32", "int8-ov"], backend="openvino-cpu", runner_factory=make_runner
    )
    report[f"{name}_openvino"] = on_ov
    key = "top1" if ev.get("labelled") else "top1_agreement"
    rows = []
    for report_, suffix in ((ev, ""), (on_ov, " @openvino-cpu")):
        fp32 = report_["variants"][0]["metrics"][key]
        rows += [
            (
                name,
                v["name"] + suffix,
                key,
                v["metrics"][key],
                round(v["metrics"][key] - fp32, 2),
                v["metrics"].get("top1_agreement"),
            )
            for v in report_["variants"]
        ]
    return rows


def split_cifar(root: Path, tmp: Path) -> tuple[Path, Path]:
    cal, val = tmp / "cifar-cal", tmp / "cifar-val"
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for i, f in enumerate(sorted(cls.glob("*.jpg"))):
            dest = (cal if i % 2 == 0 else val) / cls.name
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest / f.name)
    return cal, val


def imagenet_folder(assets: Path, tmp: Path) -> Path:
    """The ImageNet samples plus the jetson photos their CSV names, with that CSV beside them."""
    out = tmp / "imagenet-eval"
    out.mkdir()
    src = assets / "images" / "imagenet-samples"
    rows = list(csv.DictReader((src / "expected_labels.csv").open()))
    with (out / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label"])
        for row in rows:
            f = src / row["file"]
            if not f.is_file():
                f = assets / "images" / "photos-misc103" / Path(row["file"]).name
            label = row["expected_imagenet_class(es)"]
            if f.is_file() and not label.startswith("("):
                shutil.copy(f, out / f.name)
                label = label.replace(" (often ", "|").replace("/", "|").rstrip(")")
                w.writerow([f.name, label])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--assets", default=str(Path(__file__).resolve().parents[3] / "shared" / "assets")
    )
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--quick", action="store_true", help="percentile only")
    args = ap.parse_args(argv)
    setup_logging()
    assets = Path(args.assets)
    methods = ["percentile"] if args.quick else list(METHODS)
    report: dict = {"device": device_info()}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        rows = yolox(assets, tmp, methods, report)
        cal, val = split_cifar(assets / "images" / "cifar10-test500", tmp)
        rows += classifier("resnet8", assets / "models" / "resnet8-cifar10", cal, val, tmp, report)
        rows += classifier(
            "mobilenet",
            assets / "models" / "mobilenet-v1-0.25-128-imagenet",
            assets / "images" / "photos-misc103",
            imagenet_folder(assets, tmp),
            tmp,
            report,
        )
    report["seconds"] = round(time.perf_counter() - t0, 1)
    speed = report["calibration_speed"]
    print("calibration of coco-train128 at 416x416 (YOLOX-Nano)")
    print(
        table(
            ["method", "images", "seconds", "images/s"],
            [(m, v["images"], v["seconds"], v["images_per_s"]) for m, v in speed.items()],
        )
    )
    lat = report["cpu_latency_p50_ms"]
    print(
        f"\nORT CPU p50, interleaved: fp32 {lat['fp32']} ms, {lat['variant']} {lat['int8']} ms "
        f"({lat['int8_over_fp32']}x)"
    )
    print("\naccuracy (calibrated and evaluated on different images)")
    print(table(["model", "variant", "metric", "value", "vs fp32", "extra"], rows))
    save_json(args.json_out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
