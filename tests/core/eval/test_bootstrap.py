"""Bootstrap intervals on real evaluations: ResNet-8 INT8 against FP32 on 500 CIFAR-10 photos,
YOLOX-Nano on a dozen COCO photos, and the per-image COCO matching checked against
faster-coco-eval (also on a resample written out as a real replicated dataset)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.backends.factory import make_runner
from app.cli.cmd_evaluate import print_report
from app.cli.main import main
from app.core.eval import bootstrap
from app.core.eval.coco_matches import CocoMatches
from app.core.eval.evaluate import CancelToken, _run_variant, evaluate
from app.core.eval.metrics import coco_map, detections_to_coco, yolo_labels_to_coco
from app.core.frames.sources import ImageSet
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.quantize import quantize
from tests.assets import CIFAR, YOLOX, needs_assets
from tests.workspaces import copy_labelled_dev64, resnet8_int8_workspace

pytestmark = needs_assets


@pytest.fixture(scope="module")
def resnet_report(tmp_path_factory):
    """`int8-studio evaluate` of ResNet-8 FP32 and INT8 (MinMax on 50 of the photos)."""
    root = tmp_path_factory.mktemp("r8boot")
    ws = resnet8_int8_workspace(root)
    out = root / "report.json"
    args = ["--workspace", str(ws.root), "--variants", "fp32,int8", "--images", str(CIFAR)]
    assert main(["evaluate", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_classifier_intervals_and_paired_difference(resnet_report, capsys):
    report = resnet_report
    assert report["images"] == 500 and report["labelled"]
    assert report["intervals"]["resamples"] == bootstrap.RESAMPLES
    fp32, int8 = report["variants"]
    assert "diff_ci" not in fp32
    for v in (fp32, int8):
        lo, hi = v["metrics_ci"]["top1"]
        assert lo <= v["metrics"]["top1"] <= hi
        # 500 images at ~73% top-1: a binomial 95% interval is about 7.8 points wide
        assert 5.0 < hi - lo < 11.0, (lo, hi)
    assert fp32["metrics_ci"]["top1_agreement"] == [100.0, 100.0]
    lo, hi = int8["diff_ci"]["top1"]
    diff = int8["metrics"]["top1"] - fp32["metrics"]["top1"]
    assert lo <= diff <= hi
    # paired: the same photos are hard for both, so the difference is far better pinned down
    # than either score (measured: 3.6 points wide against 7.2 for the INT8 score; an unpaired
    # difference of two such scores would be ~10 wide)
    assert hi - lo < 0.6 * np.diff(int8["metrics_ci"]["top1"])[0]
    print_report(report)  # what `int8-studio evaluate` prints
    out = capsys.readouterr().out
    top1_lo, top1_hi = fp32["metrics_ci"]["top1"]
    assert f"{fp32['metrics']['top1']:.4g} [{top1_lo:.4g}, {top1_hi:.4g}]" in out
    diff_line = next(line for line in out.splitlines() if line.startswith("int8 - fp32: "))
    assert f" top1 {round(diff, 2):.4g} [{lo:.4g}, {hi:.4g}]" in diff_line
    assert "95% interval, bootstrap over images (1000)" in out


def test_resampled_mean_is_the_mean_of_the_replicated_images():
    rng = np.random.default_rng(3)
    hits = rng.integers(0, 2, 40).astype(float)
    hits[::7] = np.nan  # unlabelled images do not count
    weights = np.bincount(rng.integers(0, 40, 40), minlength=40)
    replicated = np.repeat(hits, weights)
    got = bootstrap.MeanOfImages({"top1": hits}).values(weights)["top1"]
    assert got == pytest.approx(100 * np.nanmean(replicated))
    a = bootstrap.intervals({"fp32": [bootstrap.MeanOfImages({"top1": hits})]}, resamples=50)
    b = bootstrap.intervals({"fp32": [bootstrap.MeanOfImages({"top1": hits})]}, resamples=50)
    assert a == b  # seeded: the same report twice gives the same intervals


@pytest.fixture(scope="module")
def coco12(tmp_path_factory):
    return copy_labelled_dev64(tmp_path_factory.mktemp("dev12"), 12)


def test_per_image_coco_matching_equals_faster_coco_eval(coco12):
    ws = Workspace.for_model(inspect_model(YOLOX), coco12 / "ws")
    spec = ws.spec()
    images = ImageSet(coco12 / "images")
    dets, _, _ = _run_variant(
        spec, spec.path, make_runner, "ort-cpu", images, CancelToken(), lambda f, m: None, 0, 0
    )
    sizes = [(p, hw[0], hw[1]) for p, hw in images.entries()]
    gt = yolo_labels_to_coco(sizes, coco12 / "labels", 80)
    coco_dets = detections_to_coco(dets)
    matches = CocoMatches(gt, coco_dets)
    ours = matches.values()
    theirs = coco_map(gt, coco_dets)
    assert theirs["mAP50_95"] > 10  # real detections, not an empty comparison
    assert round(ours["mAP50_95"], 2) == theirs["mAP50_95"]
    assert round(ours["mAP50"], 2) == theirs["mAP50"]
    # a resample: images 0 and 5 three times, image 7 missing, the rest once
    weights = np.ones(len(images), int)
    weights[[0, 5]], weights[7] = 3, 0
    replica: dict = {"images": [], "annotations": [], "categories": gt["categories"]}
    replica_dets = []
    for i, im in enumerate(gt["images"]):
        for _ in range(weights[i]):
            new_id = len(replica["images"]) + 1
            replica["images"].append({**im, "id": new_id})
            for a in gt["annotations"]:
                if a["image_id"] == im["id"]:
                    n = len(replica["annotations"]) + 1
                    replica["annotations"].append({**a, "image_id": new_id, "id": n})
            replica_dets += [{**d, "image_id": new_id} for d in coco_dets if d["image_id"] == i + 1]
    resampled = matches.values(weights)
    assert round(resampled["mAP50_95"], 2) == coco_map(replica, replica_dets)["mAP50_95"]
    assert resampled["mAP50_95"] != pytest.approx(ours["mAP50_95"])
    # Objects in one image of the twelve, found exactly (a reference against itself, as FP32's
    # agreement with FP32): a third of the resamples draw no image with an object and have no
    # mAP. Left out (NaN), the interval is [100, 100]; counted as 0 it was [0, 100].
    first = gt["images"][0]["id"]
    sparse = dict(gt, annotations=[a for a in gt["annotations"] if a["image_id"] == first])
    itself = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
               "score": 1.0} for a in sparse["annotations"]]  # fmt: skip
    alone = CocoMatches(sparse, itself)
    missing_it = np.ones(len(images))
    missing_it[0] = 0
    assert np.isnan(alone.values(missing_it)["mAP50_95"]) and alone.values()["mAP50_95"] == 100
    ci = bootstrap.intervals({"fp32": [alone]}, resamples=200)["fp32"]["metrics_ci"]
    assert ci["mAP50_95"] == [100.0, 100.0]


def test_detector_report_has_map_and_agreement_intervals(coco12):
    ws = Workspace.for_model(inspect_model(YOLOX), coco12 / "ws2")
    quantize(ws, precisions=("fp16",))
    report = evaluate(ws, coco12 / "images", variants=("fp32", "fp16"), runner_factory=make_runner)
    assert report["labelled"] and report["intervals"]["resamples"] == bootstrap.MAP_RESAMPLES
    fp32, fp16 = report["variants"]
    for v in (fp32, fp16):
        for name in ("mAP50_95", "mAP50", "agreement_mAP50_95"):
            lo, hi = v["metrics_ci"][name]
            assert lo <= v["metrics"][name] <= hi, (v["name"], name, lo, hi)
        lo, hi = v["metrics_ci"]["mAP50_95"]
        assert hi - lo > 2.0  # a dozen photos: several points of mAP are luck
    lo, hi = fp16["diff_ci"]["mAP50_95"]
    assert lo <= fp16["metrics"]["mAP50_95"] - fp32["metrics"]["mAP50_95"] <= hi
    assert hi - lo < 2.0  # FP16 detects what FP32 does on every resample
