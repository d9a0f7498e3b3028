"""The truth about speed: verdicts that follow the measured ratio, CPU features read from the
kernel's flags, and the `quantize` / `bench` commands saying it, on the real ResNet-8."""

from __future__ import annotations

import shutil

import pytest

from app.cli.main import main
from app.core.quant.speed import (
    int8_dot_support,
    synthetic_feed,
    u8s8_saturates,
)
from app.core.timing import speed_verdict
from tests.assets import CIFAR, RESNET8, YOLOX_TUTORIAL, needs_assets


@pytest.mark.parametrize(
    ("ratio", "words"),
    [(0.6, "runs at 0.60x"), (1.0, "not faster"), (1.03, "not faster"), (1.2, "SLOWER")],
)
def test_verdict_follows_the_ratio(ratio, words):
    assert words in speed_verdict(ratio, "int8", "fp32", "ort-cpu")


def test_vnni_is_read_from_the_flags():
    assert int8_dot_support({"avx2", "fma"}) == {"int8_dot": [], "vnni": False, "avx2": True}
    found = int8_dot_support({"avx2", "avx512_vnni", "amx_int8"})
    assert found["vnni"] and found["int8_dot"] == ["avx512_vnni", "amx_int8"]


@needs_assets
def test_feed_fills_dynamic_height_and_width_from_the_preprocessing():
    onnx_file = next(YOLOX_TUTORIAL.glob("*.onnx"))
    assert synthetic_feed(onnx_file, [384, 512]).shape == (1, 3, 384, 512)


@needs_assets
def test_quantize_and_bench_say_whether_int8_is_faster(tmp_path, capsys):
    cal = tmp_path / "cal"
    for cls_dir in sorted(CIFAR.iterdir()):
        (cal / cls_dir.name).mkdir(parents=True)
        for f in sorted(cls_dir.glob("*.jpg"))[:3]:
            shutil.copy(f, cal / cls_dir.name / f.name)
    ws = str(tmp_path / "ws")
    args = ["--images", str(cal), "--workspace", ws, "--method", "minmax"]
    assert main(["calibrate", "--model", str(RESNET8), *args]) == 0
    capsys.readouterr()
    assert main(["quantize", "--workspace", ws, "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    speed = next(line for line in out.splitlines() if line.startswith("speed: "))
    assert "fp32" in speed and "VNNI" in speed
    assert "silu:" not in out  # ResNet-8 has no SiLU: no second form was built or timed
    assert main(["bench", "--workspace", ws, "--variants", "fp32,int8", "--iterations", "5"]) == 0
    out = capsys.readouterr().out
    # no evaluation yet: the fastest is named, and accuracy is said to be unjudged
    assert "ort-cpu: fastest is " in out and "evaluate the variants to judge it" in out


def test_u8s8_saturates_only_on_x86_without_vnni():
    assert u8s8_saturates({"avx2", "fma"})
    assert not u8s8_saturates({"avx2", "avx512_vnni"})
    assert not u8s8_saturates({"asimd", "asimddp"})  # ARM: no VPMADDUBSW


@needs_assets
def test_turns_are_blocks_of_runs_when_threads_spin():
    """At 1 thread graphs alternate run by run; with more, a turn is SETTLE_S of runs not
    counted, then BLOCK_RUNS counted (an idle thread pool spins after each run and slowed the
    other session's next runs 2-3x on a 2-core machine)."""
    from app.core.quant.speed import BLOCK_RUNS, interleaved_latency

    model = next(RESNET8.glob("*.onnx"))
    feed = synthetic_feed(model, [32, 32]).astype("float32")
    graphs = {"a": model, "b": model}
    one = interleaved_latency(graphs, feed, seconds=0.0, min_rounds=3, max_rounds=3, threads=1)
    assert [one[k]["runs"] for k in graphs] == [3, 3]
    two = interleaved_latency(graphs, feed, seconds=0.0, min_rounds=3, max_rounds=3, threads=2)
    assert [two[k]["runs"] for k in graphs] == [3 * BLOCK_RUNS] * 2
    assert all(two[k]["p50"] > 0 for k in graphs)
