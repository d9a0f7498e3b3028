"""Arguments are checked while parsing, before any work: out-of-range numbers and sizes, a
file where a folder goes, a folder where a file goes, an unreadable input file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import build_parser


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The argparse error line for `argv` (exit 2), which must name what was wrong."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--iou", "-1", "must be between 0 and 1"),
        ("--iou", "nan", "must be between 0 and 1"),
        ("--conf", "1.5", "must be between 0 and 1"),
        ("--max-frames", "0", "must be 1 or more"),
        ("--topk", "-3", "must be 1 or more"),
        ("--size", "20000x20000", "between 8 and 8192"),
    ],
)
def test_run_refuses_numbers_out_of_range(flag, value, says, capsys) -> None:
    line = usage_error(["run", "--model", "m.onnx", "--source", "x", flag, value], capsys)
    assert says in line and value in line


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["calibrate", "--model", "m.onnx", "--images", "x", "--count", "0"], "1 or more"),
        (["calibrate", "--model", "m.onnx", "--images", "x", "--fraction", "0"], "more than 0"),
        (["calibrate", "--model", "m.onnx", "--images", "x", "--fraction", "2"], "between 0"),
        (["bench", "--workspace", "w", "--iterations", "0"], "1 or more"),
        (["bench", "--workspace", "w", "--warmup", "-1"], "0 or more"),
        (["bench", "--workspace", "w", "--threads", "0"], "1 or more"),
        (["debug-precision", "--workspace", "w", "--images", "x", "--analysis-images", "0"], "1"),
        (["debug-precision", "--workspace", "w", "--images", "x", "--max-fraction", "3"], "0"),
    ],
)
def test_counts_and_fractions_out_of_range_are_usage_errors(argv, says, capsys) -> None:
    assert says in usage_error(argv, capsys)


def test_a_folder_as_json_or_plot_is_refused_before_the_work(tmp_path: Path, capsys) -> None:
    for argv in (
        ["evaluate", "--workspace", "w", "--images", "x", "--json", str(tmp_path)],
        ["bench", "--workspace", "w", "--plot", str(tmp_path)],
        ["inspect", "--model", "m.onnx", "--json", str(tmp_path)],
    ):
        assert f"{tmp_path} is a folder; give a file name" in usage_error(argv, capsys)


def test_an_existing_file_as_output_or_workspace_folder_is_refused(tmp_path: Path, capsys):
    afile = tmp_path / "taken.txt"
    afile.write_text("mine")
    for argv in (
        ["run", "--model", "m.onnx", "--source", "x", "--output", str(afile)],
        ["calibrate", "--model", "m.onnx", "--images", "x", "--workspace", str(afile)],
    ):
        assert f"{afile} is a file, not a folder" in usage_error(argv, capsys)
    # a file inside a path whose parent is a file cannot be made either
    assert "is a file, not a folder" in usage_error(
        ["bench", "--workspace", "w", "--json", str(afile / "r.json")], capsys
    )
    assert afile.read_text() == "mine"


def test_bench_image_and_coco_must_be_readable_files(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.jpg"
    assert "no such file" in usage_error(
        ["bench", "--workspace", "w", "--image", str(missing)], capsys
    )
    assert "is not a regular file" in usage_error(
        ["evaluate", "--workspace", "w", "--images", "x", "--coco", str(tmp_path)], capsys
    )


def test_good_values_still_parse(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            *("run", "--model", "m.onnx", "--source", "x", "--iou", "0", "--conf", "1"),
            *("--max-frames", "1", "--output", str(tmp_path / "new" / "out")),
        ]
    )
    assert (args.iou, args.conf, args.max_frames) == (0.0, 1.0, 1)
    args = parser.parse_args(["bench", "--workspace", "w", "--warmup", "0", "--json", "r.json"])
    assert (args.warmup, args.json_out) == (0, "r.json")
