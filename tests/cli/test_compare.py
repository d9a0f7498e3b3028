"""`int8-studio compare` on the real YOLOX-Nano and the real bottle video: FP32 against real INT8
graphs built from a small MinMax calibration, FP32 against itself, and arguments refused early."""

from __future__ import annotations

import copy
import json

import cv2
import pytest

from app.cli.main import main
from tests.assets import COCO_DEV64, VIDEO, YOLOX, needs_assets

pytestmark = needs_assets
FRAMES = 12  # the first 12 frames already hold int8-stem's disagreements


@pytest.fixture(scope="module")
def int8_ws(tmp_path_factory):
    """A workspace with a real INT8 variant (MinMax on 8 COCO images), built once."""
    from app.core.model.inspection import inspect_model
    from app.core.model.workspace import Workspace
    from app.core.quant.calibration import calibrate
    from app.core.quant.quantize import quantize
    from tests.workspaces import add_stem_only_int8

    root = tmp_path_factory.mktemp("compare-ws")
    ws = Workspace.for_model(copy.deepcopy(inspect_model(YOLOX)), root)
    calibrate(ws, COCO_DEV64, count=8, method="minmax")
    quantize(ws, precisions=("int8",))
    # The default INT8 agrees with FP32 on the video's first frames (its sensitive blocks stay
    # float); with only the stem float (the recipe before) it visibly disagrees there.
    add_stem_only_int8(ws)
    return root


def test_fp32_vs_int8_on_the_video_reports_and_draws_the_disagreements(int8_ws, tmp_path, capsys):
    out, report_path = tmp_path / "frames", tmp_path / "compare.json"
    args = ["compare", "--workspace", str(int8_ws), "--variants", "fp32,int8-stem"]
    args += ["--source", str(VIDEO), "--frames", str(FRAMES)]
    assert main([*args, "--output", str(out), "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    summary = report["summary"]
    assert summary["frames"] == FRAMES == len(report["frames"])
    assert 0 < summary["disagreeing_frames"] <= FRAMES
    assert summary["agreement"] < 1.0
    assert summary["missed"] + summary["extra"] + summary["other_class"] > 0
    assert 0.5 <= summary["mean_iou"] <= 1.0 and summary["max_score_diff"] >= 0.0
    disagreeing = [f for f in report["frames"] if f["missed"] or f["extra"] or f["other_class"]]
    assert len(disagreeing) == summary["disagreeing_frames"]
    # every disagreeing frame has its side-by-side image: both variants, twice the frame's width
    width = int(cv2.VideoCapture(str(VIDEO)).get(cv2.CAP_PROP_FRAME_WIDTH))
    assert sorted(report["images"]) == sorted(f["image"] for f in disagreeing)
    for record in disagreeing:
        image = cv2.imread(record["image"])
        assert image is not None and image.shape[1] > 2 * width
        kinds = {d["kind"] for d in record["disagreements"]}
        assert kinds and kinds <= {"missed", "extra", "other_class", "other_class_b"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.rsplit("/", 1)[1] for p in report["images"]
    )  # nothing else (no temporary files) left in the folder
    printed = capsys.readouterr().out
    assert (
        f"fp32 vs int8-stem: {FRAMES} frame(s), {summary['disagreeing_frames']} disagree" in printed
    )
    assert "missed" in printed.splitlines()[2]  # the table's header


def test_the_gui_compare_processor_counts_what_the_cli_reports(int8_ws, tmp_path):
    """One comparison in core: the Compare view's processor, fed the same frames, ends on the
    same summary the command prints."""
    from app.core.frames.sources import FrameSource
    from app.core.model.workspace import Workspace
    from app.gui.processors import CompareProcessor

    report_path = tmp_path / "compare.json"
    args = ["compare", "--workspace", str(int8_ws), "--source", str(VIDEO)]
    assert main([*args, "--frames", "6", "--json", str(report_path)]) == 0
    cli_summary = json.loads(report_path.read_text())["summary"]

    ws = Workspace.open(int8_ws)
    spec = ws.spec()
    paths = [spec.path, str(ws.require_variant("int8"))]
    proc = CompareProcessor(spec, paths, "ort-cpu", ["fp32", "int8"])
    proc.open()
    try:
        for frame in FrameSource(str(VIDEO), max_frames=6):
            proc.process(frame, (640, 480))
    finally:
        proc.close()
    assert proc.comparison.summary() == cli_summary


def test_a_variant_against_itself_agrees_and_writes_no_image(tmp_path, capsys):
    out = tmp_path / "frames"
    args = ["compare", "--model", str(YOLOX), "--variants", "fp32,fp32", "--source", str(VIDEO)]
    assert main([*args, "--frames", "3", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 frame(s), 0 disagree; agreement 100.0%" in printed
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--variants", "fp32"], "--variants takes two names"),
        (["--backends", "ort-cpu,tensorrtx"], "unknown backend 'tensorrtx'"),
        (["--frames", "0"], "--frames/--max-frames: 0: must be 1 or more"),
        (["--match-iou", "nan"], "--match-iou must be in (0, 1]"),
        (["--json", "."], "is a folder"),
    ],
)
def test_bad_arguments_are_one_line_before_any_work(extra, message, tmp_path, capsys):
    args = ["compare", "--model", str(YOLOX), "--source", str(VIDEO), "--variants", "fp32,fp32"]
    try:
        code = main([*args, *extra])
    except SystemExit as exc:  # refused by argparse while parsing: its usage line, then the error
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1], err
    assert len(err) == 1 or err[0].startswith("usage:"), err  # argparse: usage, then the error


def test_a_missing_variant_names_the_workspace_and_what_to_run(tmp_path, capsys):
    args = ["compare", "--model", str(YOLOX), "--workspace", str(tmp_path / "ws")]
    assert main([*args, "--variants", "fp32,int8", "--source", str(VIDEO)]) == 2
    err = capsys.readouterr().err
    assert "variant 'int8' is not in" in err and "(have: fp32)" in err
    assert "int8-studio quantize" in err
