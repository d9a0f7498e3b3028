"""Refuse unusable model files before anything runs, with one line that names the file."""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import uses_external_data

from app.core.errors import UserError

MAX_MODEL_BYTES = 2 * 1024**3  # protobuf's own limit for a single file


def _check_external_data(model: onnx.ModelProto, model_file: Path) -> None:
    """External weights must be files inside the model's folder (no path escapes)."""
    folder = model_file.parent.resolve()
    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise UserError(
                f"{model_file}: weight '{tensor.name}' points outside the model folder "
                f"('{location}'); refusing to read it. Keep external data beside the model."
            )
        if not target.is_file():
            raise UserError(
                f"{model_file}: external weight file '{location}' is missing; copy it next to "
                "the model"
            )


def load_checked_model(model_file: Path) -> onnx.ModelProto:
    """Load and validate an ONNX file; raise `UserError` naming the file and the problem."""
    model_file = Path(model_file)
    if not model_file.is_file():
        raise UserError(f"{model_file}: no such file")
    size = model_file.stat().st_size
    if size == 0:
        raise UserError(f"{model_file}: the file is empty (0 bytes); export the model again")
    if size > MAX_MODEL_BYTES:
        raise UserError(f"{model_file}: larger than 2 GiB; save weights as external data")
    try:
        model = onnx.load(str(model_file), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise UserError(
            f"{model_file}: not a readable ONNX model (truncated or another format: "
            f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
        ) from exc
    _check_opset(model, model_file)
    if not model.graph.node or not model.graph.output:
        raise UserError(
            f"{model_file}: not an ONNX model (no graph found; truncated or wrong file)"
        )
    _check_external_data(model, model_file)
    if any(uses_external_data(t) for t in model.graph.initializer):
        onnx.load_external_data_for_model(model, str(model_file.parent))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise UserError(f"{model_file}: the ONNX graph is invalid ({first})") from exc
    _check_image_input(model, model_file)
    return model


def _check_opset(model: onnx.ModelProto, model_file: Path) -> None:
    """Refuse opsets newer than the installed onnx knows (ONNX Runtime never runs those)."""
    known = onnx.defs.onnx_opset_version()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > known:
            raise UserError(
                f"{model_file}: uses ONNX opset {entry.version}, but the installed onnx and "
                f"ONNX Runtime support opsets up to {known}; re-export the model at opset "
                f"{known} or lower, or upgrade onnxruntime"
            )


def _check_image_input(model: onnx.ModelProto, model_file: Path) -> None:
    init_names = {init.name for init in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in init_names]
    images = [
        vi
        for vi in inputs
        if len(vi.type.tensor_type.shape.dim) == 4
        and vi.type.tensor_type.elem_type
        in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.UINT8)
    ]
    if not images:
        desc = (
            ", ".join(f"{vi.name} (rank {len(vi.type.tensor_type.shape.dim)})" for vi in inputs)
            or "none"
        )
        raise UserError(
            f"{model_file}: not a vision model: it needs one 4-D float image input "
            f"(or uint8; NCHW or NHWC), but its inputs are {desc}"
        )
    if len(inputs) > 1:
        names = ", ".join(vi.name for vi in inputs)
        raise UserError(
            f"{model_file}: has {len(inputs)} inputs ({names}); INT8 Studio runs models with one "
            "image input"
        )
