"""Shared CLI arguments: one declaration per flag, the same help everywhere, core's defaults."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from app.cli.arguments import comma_list, parse_size
from app.cli.main import build_parser
from app.core import defaults

CLI = Path(__file__).resolve().parents[2] / "app" / "cli"
# Flags that mean one thing wherever they appear; --json and --workspace word their help per
# command (what is written; whether the workspace must exist), so they are checked apart.
SAME_EVERYWHERE = [
    "--model",
    "--size",
    "--variants",
    "--backend",
    "--backends",
    "--target",
    "--tf32",
    "--labels",
    "--coco",
    "--target-drop",
]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("int8-studio has no subcommands")


def options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions for s in a.option_strings}


# `compare` takes exactly two variants (A,B) and a backend for each: a pair, not a list.
PAIRS = {("compare", "--variants"), ("compare", "--backends")}
# `build` names engine kinds (fp32, fp16, int8: default all three); `bench` and `evaluate` name
# the workspace's variants (default: every one it has, int8-ov and int8-mp included)
KINDS = {("build", "--variants")}


def test_shared_flags_have_one_help_and_default_in_every_command() -> None:
    seen: dict[str, dict[str, tuple]] = {}
    for name, p in subparsers().items():
        if name == "gui":  # the GUI declares its own (app.gui.scripted; the GUI imports no CLI)
            continue
        for flag, action in options(p).items():
            if (name, flag) in PAIRS | KINDS:
                continue
            if flag in SAME_EVERYWHERE:
                # whether a flag is required is the command's choice; its meaning is not
                key = (action.help, action.default, action.type, action.choices)
                seen.setdefault(flag, {})[name] = key
    assert {f for f in SAME_EVERYWHERE if len(seen.get(f, {})) >= 2} >= {
        "--model",
        "--size",
        "--variants",
        "--backend",
        "--target",
        "--tf32",
        "--labels",
        "--coco",
    }
    for flag, per_command in seen.items():
        assert len(set(per_command.values())) == 1, (flag, per_command)


def test_workspace_is_required_after_calibrate_and_optional_in_it() -> None:
    subs = subparsers()
    for name in ("quantize", "evaluate", "bench", "debug-precision"):
        assert options(subs[name])["--workspace"].required, name
    assert not options(subs["calibrate"])["--workspace"].required


def test_defaults_come_from_core_defaults(tmp_path: Path) -> None:
    parser = build_parser()
    ws = ["--workspace", str(tmp_path)]
    bench = parser.parse_args(["bench", *ws])
    assert bench.variants is None  # every variant the workspace has (`workspace_variants`)
    assert bench.backends == [defaults.BACKEND]
    assert (bench.iterations, bench.warmup) == (defaults.BENCH_ITERATIONS, defaults.BENCH_WARMUP)
    evaluate = parser.parse_args(["evaluate", *ws, "--images", str(tmp_path)])
    assert evaluate.variants is None and evaluate.backend == defaults.BACKEND
    calib = parser.parse_args(["calibrate", "--model", "m.onnx", "--images", str(tmp_path)])
    assert (calib.method, calib.percentile, calib.seed) == (
        defaults.CALIBRATION_METHOD,
        defaults.PERCENTILE,
        defaults.CALIBRATION_SEED,
    )
    quant = parser.parse_args(["quantize", *ws])
    assert quant.precision == list(defaults.QUANTIZE_PRECISIONS)
    assert quant.target == defaults.QUANTIZE_TARGET
    debug = parser.parse_args(["debug-precision", *ws, "--images", str(tmp_path)])
    assert (debug.target_drop, debug.analysis_images, debug.max_fraction) == (
        defaults.TARGET_DROP,
        defaults.ANALYSIS_IMAGES,
        defaults.MAX_FLOAT_FRACTION,
    )
    assert debug.name is None  # MIXED_VARIANT_NAME with the target's suffix (`variant_name`)
    assert (debug.pool, debug.min_agreement) == ([], None)  # the --images folder; per task
    pooled = ["--pool", "photos", "--pool", "walk.mp4"]
    debug = parser.parse_args(["debug-precision", *ws, "--images", str(tmp_path), *pooled])
    assert debug.pool == ["photos", "walk.mp4"]
    assert parser.parse_args(["fetch-demo"]).timeout == defaults.DOWNLOAD_TIMEOUT_S
    for command in (["bench"], ["evaluate", "--images", str(tmp_path)]):  # the user's target
        assert (
            parser.parse_args([command[0], *ws, *command[1:]]).target_drop == defaults.TARGET_DROP
        )


def test_a_target_drop_below_zero_or_nan_is_a_usage_error(capsys) -> None:
    parser = build_parser()
    for bad in ("-1", "nan", "lots"):
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", "--workspace", "w", "--target-drop", bad])
        assert "--target-drop" in capsys.readouterr().err


def test_lists_and_sizes_parse_alike_in_every_command(tmp_path: Path) -> None:
    parser = build_parser()
    ws = ["--workspace", str(tmp_path)]
    assert parser.parse_args(["bench", *ws, "--variants", " int8, fp32,,"]).variants == [
        "int8",
        "fp32",
    ]
    assert parser.parse_args(["bench", *ws, "--backends", "ort-cpu,ort-cuda"]).backends == [
        "ort-cpu",
        "ort-cuda",
    ]
    assert parser.parse_args(["quantize", *ws, "--precision", "fp16"]).precision == ["fp16"]
    for command in (["inspect"], ["run", "--source", "x"], ["calibrate", "--images", "x"]):
        args = parser.parse_args([*command, "--model", "m.onnx", "--size", "384X512"])
        assert args.size == [384, 512]
    assert comma_list(",") == [] and parse_size("32x48") == [32, 48]


def test_a_bad_size_is_a_usage_error_naming_the_value(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["inspect", "--model", "m.onnx", "--size", "416"])
    assert exc.value.code == 2
    assert "size must look like 416x416, not '416'" in capsys.readouterr().err


def test_json_without_a_file_prints_to_stdout_only_for_inspect(tmp_path: Path) -> None:
    parser = build_parser()
    assert parser.parse_args(["inspect", "--model", "m.onnx", "--json"]).json_out == "-"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--workspace", str(tmp_path), "--json"])


def test_commands_import_no_other_command() -> None:
    """Shared pieces live in arguments/output; a command reaching into another's module (it did
    for a private size parser) ties commands together."""
    offenders = []
    for path in sorted(CLI.glob("cmd_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app.cli.cmd_"):
                offenders.append(f"{path.name}: from {node.module} import ...")
    assert offenders == []
