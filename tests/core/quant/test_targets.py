"""What the app says when a variant runs on a backend its Q/DQ layout was not made for."""

from __future__ import annotations

import pytest

from app.core.quant.targets import TARGET_OF_BACKEND, layout_note, layout_summary


@pytest.mark.parametrize(
    ("variant", "target", "backend", "made_for_it", "how"),
    [
        ("int8", "ort-cpu", "ort-tensorrt", "int8-trt", "quantize --target tensorrt"),
        ("int8-trt", "tensorrt", "ort-cpu", "int8", "quantize --target ort-cpu"),
        ("int8-ov", "openvino", "ort-cpu", "int8", "quantize --target ort-cpu"),
        ("int8", "ort-cpu", "openvino-cpu", "int8-ov", "quantize --target openvino"),
        ("int8-mp-trt", "tensorrt", "openvino-cpu", "int8-mp-ov",
         "debug-precision --target openvino"),
        ("int8-eq-trt", "tensorrt", "openvino-cpu", "int8-eq-ov",
         "quantize --target openvino --equalize"),
    ],
)  # fmt: skip
def test_a_variant_on_another_layouts_backend_is_told_what_to_build(
    variant, target, backend, made_for_it, how
):
    note = layout_note(variant, target, backend)
    assert note is not None
    assert note.startswith(f"{variant} is laid out for {target}, not for {backend}")
    assert f"made for {backend} is {made_for_it} (int8-studio {how})" in note


@pytest.mark.parametrize(
    ("variant", "target", "backend"),
    [
        ("int8", "ort-cpu", "ort-cpu"),
        ("int8-trt", "tensorrt", "ort-tensorrt"),
        ("int8-trt", "tensorrt", "ort-cuda"),  # one layout for both GPU providers
        ("int8", "ort-cpu", "tensorrt"),  # native TensorRT runs the engine of int8-trt's graph
        ("fp16", None, "openvino-cpu"),  # not an INT8 graph of the app's
        ("int8", "someone-elses", "ort-cpu"),
    ],
)
def test_no_note_where_the_layout_fits_or_is_not_the_apps(variant, target, backend):
    assert layout_note(variant, target, backend) is None


def test_one_line_for_several_variants_on_one_backend():
    targets = {"fp16": None, "int8": "ort-cpu", "int8-trt": "tensorrt", "int8-ov": "openvino"}
    line = layout_summary(targets, "ort-cpu", have={"fp16", "int8", "int8-trt", "int8-ov"})
    assert line == (
        "on ort-cpu, int8-trt (tensorrt), int8-ov (openvino) are laid out for another backend; "
        "made for ort-cpu: int8"
    )
    # what the workspace lacks is named with the command that builds it
    line = layout_summary({"int8": "ort-cpu", "int8-mp": "ort-cpu"}, "openvino-cpu", {"int8"})
    assert line is not None and line.endswith(
        "made for openvino-cpu: int8-mp-ov not built (int8-studio debug-precision --target "
        "openvino), int8-ov not built (int8-studio quantize --target openvino)"
    )
    assert layout_summary({"int8-ov": "openvino"}, "openvino-cpu") is None
    assert set(TARGET_OF_BACKEND) >= {"ort-cpu", "openvino-cpu", "ort-tensorrt"}
