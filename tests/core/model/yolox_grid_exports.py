"""The real YOLOX-Nano's raw grid re-shaped where no layout reads it as a detector's output: for
the tests of names-only presets (`test_transposed_and_user_presets`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.assets import YOLOX_ONNX
from tests.core.model.derived_layouts import ANCHORS, CLASSES


def build_transposed_yolox(out_path: Path, output_name: str = "output") -> Path:
    """The real YOLOX-Nano with its raw grid transposed to [1, 85, 3549] (an export for a runtime
    that wants features first); YOLOX's own input. Named "output", its input and output names
    are official YOLOX's, so the bundled preset matches by names."""
    model = onnx.load(str(YOLOX_ONNX))
    out = model.graph.output[0]
    for node in model.graph.node:
        node.output[:] = ["yolox_head" if o == out.name else o for o in node.output]
    model.graph.ClearField("output")
    model.graph.node.append(
        helper.make_node("Transpose", ["yolox_head"], [output_name], perm=[0, 2, 1])
    )
    model.graph.output.append(
        helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 5 + CLASSES, ANCHORS])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path


def build_unreadable_yolox(out_path: Path) -> Path:
    """The real YOLOX-Nano's grid reshaped to [1, 255, 1183], which no decoder reads, under
    official YOLOX's input and output names."""
    model = onnx.load(str(YOLOX_ONNX))
    out = model.graph.output[0]
    for node in model.graph.node:
        node.output[:] = ["yolox_head" if o == out.name else o for o in node.output]
    model.graph.ClearField("output")
    shape = numpy_helper.from_array(np.array([1, 255, 1183], np.int64), "unreadable_shape")
    model.graph.initializer.append(shape)
    model.graph.node.append(
        helper.make_node("Reshape", ["yolox_head", "unreadable_shape"], ["output"])
    )
    model.graph.output.append(
        helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 255, 1183])
    )
    onnx.save(model, str(out_path))
    return out_path
