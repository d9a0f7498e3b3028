"""The mixed-precision search judged on a pool and checked on held-out images, on real models:
the split is disjoint and leaves the calibration images out, the float-op cap holds, and the
held-out figures it reports are what `evaluate` measures on those images by itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest

from app.backends.factory import make_runner
from app.core.errors import UserError
from app.core.eval.evaluate import evaluate
from app.core.eval.pool import PoolPart, build_pool
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.precision.debug import analyse_layers
from app.core.precision.mixed import fill, ladder, ranked_placement, search_mixed_precision
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.graph_rules import compute_nodes, name_nodes
from tests.assets import VIDEO, YOLOX
from tests.conftest import IMAGES, RESNET8, needs_assets
from tests.workspaces import copy_labelled_dev64

pytestmark = needs_assets


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """ResNet-8 calibrated on 60 CIFAR images; a labelled folder of 80 others (class
    subfolders) and an unlabelled pool of 60 more plus 4 of the calibration images."""
    root = tmp_path_factory.mktemp("mp")
    cal, val, pool = root / "cal", root / "val", root / "pool"
    pool.mkdir()
    for cls in sorted((IMAGES / "cifar10-test500").iterdir()):
        files = sorted(cls.glob("*.jpg"))
        (cal / cls.name).mkdir(parents=True)
        (val / cls.name).mkdir(parents=True)
        for f in files[:6]:
            shutil.copy(f, cal / cls.name / f.name)
        for f in files[6:14]:
            shutil.copy(f, val / cls.name / f.name)
        for f in files[14:20]:
            shutil.copy(f, pool / f"{cls.name}_{f.name}")
    for f in sorted(cal.rglob("*.jpg"))[:4]:  # the user's folder often holds them too
        shutil.copy(f, pool / f"cal_{f.parent.name}_{f.name}")
    ws = Workspace.for_model(inspect_model(RESNET8), root / "ws")
    result = calibrate(ws, cal, method="minmax")
    # the copies in the pool are the same pixels under other names: exclusion is by file,
    # so list them as used too (what a calibration on the user's own folder records)
    used = [*result.images_used, *(str(p) for p in pool.glob("cal_*"))]
    return ws, val, pool, used


def _held_out_by_hand(files: list[Path]) -> list[Path]:
    """The rule the search promises, written out again: the 4th, 8th, ... file of a source."""
    return [f for i, f in enumerate(files) if (i + 1) % 4 == 0]


def test_ladder_ends_at_the_cap():
    assert ladder(0) == [0] and ladder(1) == [0, 1] and ladder(2) == [0, 1, 2]
    assert ladder(11) == [0, 1, 2, 4, 8, 11]


def test_fill_counts_convolutions_not_blocks():
    """Blocks hold a conv, its activation and the convs their tensor feeds; only convs count,
    and a block too big for what is left gives way to a smaller one ranked after it."""
    ranking = [["c1", "act1", "c2"], ["c2", "act2", "c3", "c4"], ["c5", "act5"], ["c6"]]
    convs = {"c1", "c2", "c3", "c4", "c5", "c6"}
    assert fill(ranking, convs, 0) == []
    assert fill(ranking, convs, 1) == ["c5", "act5"]
    assert fill(ranking, convs, 3) == ["c1", "act1", "c2", "c5", "act5"]
    assert fill(ranking, convs, 4) == ["c1", "act1", "c2", "act2", "c3", "c4"]
    assert sum(n in convs for n in fill(ranking, convs, 5)) == 5


def test_pool_split_is_disjoint_deterministic_and_skips_calibration(cifar):
    _, val, pool_dir, used = cifar
    pool = build_pool(val, [pool_dir, VIDEO], exclude=used)
    again = build_pool(val, [pool_dir, VIDEO], exclude=used)
    search = [it.path for it in pool.search.items]
    held = [it.path for it in pool.held_out.items]
    assert search == [it.path for it in again.search.items]
    assert held == [it.path for it in again.held_out.items]
    assert not set(search) & set(held)
    assert pool.search_available > 160 == len(search)  # trials run on a subset of a big pool
    assert not {str(p) for p in search + held} & set(used)
    assert pool.calibration_excluded == 4
    pool_files = sorted(p for p in pool_dir.iterdir() if not p.name.startswith("cal_"))
    val_files = sorted(val.rglob("*.jpg"))
    expected = _held_out_by_hand(val_files) + _held_out_by_hand(pool_files)
    assert [p for p in held if "#" not in p.name] == expected
    frames = [p for p in search + held if "#" in p.name]
    assert frames and all(p.name.startswith(VIDEO.name) for p in frames)
    labelled = {it.path for it in pool.search.items + pool.held_out.items if it.labelled}
    assert labelled == set(val_files)
    first = pool.held_out.items[-1]
    image = next(iter(PoolPart([first])))[1]
    assert image.shape[:2] == first.size  # a kept frame decodes to the size recorded


def test_a_pool_of_calibration_images_only_says_why_it_is_empty(cifar):
    """The folder the workspace was calibrated on, given as the search images: every image is
    left out, and the message says so instead of '0 usable images' of a folder that has them."""
    _, _, _, used = cifar
    cal = Path(used[0]).parent.parent  # cal/<class>/<image>
    with pytest.raises(UserError) as err:
        build_pool(cal, [], exclude=used)
    message = str(err.value)
    assert message.startswith(f"{cal}: 0 usable images (60 left out because the calibration ")
    assert "give images the calibration did not use" in message


def test_search_keeps_the_cap_and_reports_held_out_figures_evaluate_agrees_with(cifar, tmp_path):
    ws, val, pool_dir, _ = cifar
    # a labelled top-1 gain of 100 points cannot be met (agreement 100 alone can: ResNet-8's
    # INT8 reaches it with 2 convs float): the search climbs the whole ladder to the cap and
    # keeps the trial closest to FP32, so the cap is really tested
    report = search_mixed_precision(
        ws,
        val,
        pool=[pool_dir],
        max_fraction=0.3,
        min_agreement=100.0,
        target_drop=-100.0,
        runner_factory=make_runner,
    )
    model = name_nodes(onnx.load(ws.spec().path))
    total = len(compute_nodes(model))
    assert report["compute_ops"] == total and report["cap"] == int(0.3 * total)
    meta = ws.variant_meta("int8-mp") or {}
    assert meta["compute_ops_kept_float"] == report["layers_kept"] <= report["cap"]
    assert len(meta["kept_float"]) <= 0.3 * total
    trials = report["trials"]
    assert all(t["within_cap"] == (t["compute_ops_float"] <= report["cap"]) for t in trials)
    assert not report["reached"]
    assert report["chosen_trial"] in [t["trial"] for t in report["trials"] if t["within_cap"]]
    img = report["images"]
    assert img["search_labelled"] == 60 and img["held_out_labelled"] == 20  # 80 labelled, 1 in 4
    # the pool's 4 copies of calibration images are not in the calibration's record, so they
    # stay (what is left out is what the calibration read, by file)
    assert img["search_images"] + img["held_out_images"] == 80 + 64
    assert img["calibration_images_excluded"] == 0

    # The held-out images, gathered by hand from the rule and scored by `evaluate` alone.
    check = tmp_path / "held"
    for f in _held_out_by_hand(sorted(val.rglob("*.jpg"))):
        (check / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, check / f.parent.name / f.name)
    for f in _held_out_by_hand(sorted(pool_dir.iterdir())):
        shutil.copy(f, check / f.name)
    ev = evaluate(ws, check, variants=["fp32", "int8-mp"], runner_factory=make_runner)
    assert ev["images"] == img["held_out_images"] and ev["labelled_images"] == 20
    by_name = {v["name"]: v["metrics"] for v in ev["variants"]}
    held = report["held_out"]
    chosen = held["chosen"]["metrics"]
    assert chosen["top1_agreement"] == pytest.approx(by_name["int8-mp"]["top1_agreement"])
    assert chosen["top1"] == pytest.approx(by_name["int8-mp"]["top1"])
    assert held["fp32"]["metrics"]["top1"] == pytest.approx(by_name["fp32"]["top1"])
    lo, hi = held["chosen"]["metrics_ci"]["top1"]
    assert lo <= chosen["top1"] <= hi and lo < hi


@pytest.mark.slow
def test_yolox_search_on_a_pool_reports_held_out_map_that_evaluate_agrees_with(tmp_path):
    """Detector path: agreement mAP50-95 on an unlabelled pool plus labelled mAP, tensorrt
    layout; held-out figures recomputed by `evaluate` on the held-out files."""
    dev = copy_labelled_dev64(tmp_path / "dev", 16)
    images, labels = dev / "images", dev / "labels"
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    for f in sorted((IMAGES / "photos-misc103").glob("*.jpg"))[:24]:
        shutil.copy(f, pool_dir / f.name)
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    calibrate(ws, IMAGES / "coco-train128" / "images", count=16, method="minmax")
    report = search_mixed_precision(
        ws,
        images,
        pool=[pool_dir],
        target="tensorrt",
        max_fraction=0.03,  # 3 of 113: default, leading+heads (over the cap), k = 0, 1, 2, 3
        min_agreement=100.0,
        variant_name="int8-mp-trt",
        analysis=analyse_layers(ws, target="tensorrt", count=2),  # 2 images: the ranking only
        runner_factory=make_runner,
    )
    assert report["metric"] == "agreement_mAP50_95" and report["labelled_metric"] == "mAP50_95"
    assert report["layers_kept"] <= report["cap"] == 3
    check = tmp_path / "held" / "images"
    check.mkdir(parents=True)
    for f in _held_out_by_hand(sorted(images.iterdir())) + _held_out_by_hand(
        sorted(pool_dir.iterdir())
    ):
        shutil.copy(f, check / f.name)
    # labels beside the check folder: only the labelled folder's files have them
    shutil.copytree(labels, tmp_path / "held" / "labels")
    ev = evaluate(ws, check, variants=["fp32", "int8-mp-trt"], runner_factory=make_runner)
    got = {v["name"]: v["metrics"] for v in ev["variants"]}["int8-mp-trt"]
    held = report["held_out"]["chosen"]["metrics"]
    assert held["agreement_mAP50_95"] == pytest.approx(got["agreement_mAP50_95"], abs=0.01)
    assert report["images"]["held_out_images"] == ev["images"] == 4 + 6


def test_ort_cpu_ranked_trials_quantize_the_heads_where_the_calibration_allows(cifar, tmp_path):
    """YOLOX-Nano's prediction convs have ranges (their outputs feed the float tail's Concat):
    the ranked trials quantize them, so the cap is spent on sensitive blocks. ResNet-8's logits
    are float-tail tensors without a range, but its MatMul head runs with a float output and
    needs none."""
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    folder = tmp_path / "cal"
    folder.mkdir()
    for f in sorted((IMAGES / "coco-train128" / "images").glob("*.jpg"))[:4]:
        shutil.copy(f, folder / f.name)
    ranges = calibrate(ws, folder, method="minmax").folder / "ranges.json"
    assert ranked_placement("ort-cpu", Path(ws.spec().path), ranges) == "heads-int8"
    assert ranked_placement("tensorrt", Path(ws.spec().path), ranges) == "default"
    r8, *_ = cifar
    r8_ranges = latest_calibration(r8) / "ranges.json"
    assert ranked_placement("ort-cpu", Path(r8.spec().path), r8_ranges) == "heads-int8"
