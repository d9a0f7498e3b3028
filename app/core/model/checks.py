"""Refuse unusable model files before anything runs, with one line that names the file."""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import uses_external_data

from app.core.errors import (
    GrayscaleModel,
    HalfPrecisionModel,
    SizeInputsModel,
    UnbatchedModel,
    UnorderedModel,
    UserError,
)
from app.core.model.batch_axis import unbatched_image_input
from app.core.model.graph_inputs import data_inputs, shape_of
from app.core.model.gray_input import gray_image_input
from app.core.model.node_order import sort_nodes
from app.core.model.size_inputs import size_inputs

MAX_MODEL_BYTES = 2 * 1024**3  # protobuf's own limit for a single file
# The largest input side the app runs (app.core.model.spec's Preprocess.validate): a fixed input
# beyond it is refused before ONNX Runtime is asked to probe it (20000x20000 took 4.8 GB, 40 s).
MAX_INPUT_SIDE = 8192


def _check_external_data(model: onnx.ModelProto, model_file: Path) -> None:
    """External weights must be plain files inside the model's folder (no path escapes, no hard
    links to files elsewhere), hold every byte their tensors declare, and with the graph stay
    under 2 GiB: the app serialises models whole (checker, quantization), which protobuf
    cannot beyond that, and it must say so before reading gigabytes."""
    folder = model_file.parent.resolve()
    total = model_file.stat().st_size
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
        st = target.stat()
        if st.st_nlink > 1:
            raise UserError(
                f"{model_file}: external weight file '{location}' is a hard link shared with "
                "another file; refusing to read it. Copy the weights as a file of their own."
            )
        offset, length = _external_span(tensor)
        if offset + length > st.st_size:
            raise UserError(
                f"{model_file}: external weight file '{location}' is shorter than declared "
                f"({st.st_size} bytes, tensor '{tensor.name}' needs {offset + length}); it is "
                "truncated: copy or export it again"
            )
        total += length
    if total > MAX_MODEL_BYTES:
        raise UserError(
            f"{model_file}: the model with its external weights is {total / 1024**3:.1f} GiB; "
            "INT8 Studio handles models up to 2 GiB (protobuf's limit)"
        )


def _external_span(tensor: onnx.TensorProto) -> tuple[int, int]:
    """(offset, length in bytes) of an external tensor: declared, else from its shape."""
    info = {e.key: e.value for e in tensor.external_data}
    try:
        offset = int(info.get("offset", 0))
        if "length" in info:
            return offset, int(info["length"])
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (ValueError, KeyError, TypeError):
        return 0, 0  # an odd declaration: left to onnx's own loader to refuse
    return offset, itemsize * math.prod(tensor.dims)


def load_checked_model(model_file: Path) -> onnx.ModelProto:
    """Load and validate an ONNX vision model; raise `UserError` naming the file and the
    problem."""
    model = load_valid_onnx(model_file)
    _check_image_input(model, Path(model_file))
    return model


def load_valid_onnx(model_file: Path, order_nodes: bool = False) -> onnx.ModelProto:
    """Load an ONNX file (external data included) that onnx's checker accepts; `UserError`
    naming the file otherwise (`UnorderedModel` when only its node order is wrong). Its inputs
    are not judged here (`load_checked_model` does). `order_nodes`: put the nodes in order
    first (for a copy to be written)."""
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
    if order_nodes:
        try:
            sort_nodes(model)
        except UserError as exc:
            raise UserError(f"{model_file}: the ONNX graph is invalid ({exc})") from exc
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0][:160]
        if "topologically sorted" in first:
            raise UnorderedModel(
                f"{model_file}: its nodes are out of order (a node reads a tensor that a later "
                "node writes; float16 converters such as onnxconverter-common write such "
                "graphs). ONNX Runtime may run it, but ONNX's own tools, which calibration "
                f"and quantization use, refuse it: let `int8-studio adapt --model {model_file}` "
                "write a copy in order (float16 widened to float32 too) and open that"
            ) from exc
        raise UserError(f"{model_file}: the ONNX graph is invalid ({first})") from exc
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
    inputs = data_inputs(model)
    images = [
        vi
        for vi in inputs
        if len(vi.type.tensor_type.shape.dim) == 4
        and vi.type.tensor_type.elem_type
        in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.UINT8)
    ]
    unbatched = unbatched_image_input(model)
    if not images and unbatched is not None:
        raise UnbatchedModel(
            f"{model_file}: its image input {unbatched.name} {shape_of(unbatched)} has no batch "
            "axis (one "
            "image, as torchvision's detectors export); INT8 Studio feeds [N, C, H, W] or "
            f"[N, H, W, C]: let `int8-studio adapt --model {model_file}` write a copy that "
            "takes a batch of one (the same graph after it) and open that"
        )
    if not images:
        desc = (
            ", ".join(f"{vi.name} (rank {len(vi.type.tensor_type.shape.dim)})" for vi in inputs)
            or "none"
        )
        raise UserError(
            f"{model_file}: not a vision model: it needs one 4-D float image input "
            f"(or uint8; NCHW or NHWC), but its inputs are {desc}"
        )
    image, sizes = size_inputs(model)
    if image is not None:
        names = ", ".join(vi.name for vi in sizes)
        raise SizeInputsModel(
            f"{model_file}: besides its image input {image.name} it takes {names}, the size of the "
            "picture the image was resized from (PaddleDetection and RT-DETR exports scale "
            "their boxes back to it in the graph); INT8 Studio maps boxes back to the frame "
            f"itself: let `int8-studio adapt --model {model_file}` write a copy that computes "
            "them from the image (boxes in input pixels, the same graph after it) and open that"
        )
    if len(inputs) > 1:
        names = ", ".join(vi.name for vi in inputs)
        raise UserError(
            f"{model_file}: has {len(inputs)} inputs ({names}); INT8 Studio runs models with one "
            "image input"
        )
    if images[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16:
        raise HalfPrecisionModel(
            f"{model_file}: its input {images[0].name} is float16, a half-precision export "
            "(Ultralytics half=True, torch .half()); INT8 Studio starts from an FP32 model and "
            "builds the FP16 and INT8 variants itself: export it again in FP32, or let "
            f"`int8-studio adapt --model {model_file}` write an FP32 copy (the same weights, "
            "computed in FP32) and open that"
        )
    gray = gray_image_input(model)
    if gray is not None:
        one = f"{model_file}: its image input {gray[0].name} {shape_of(gray[0])} has one channel"
        if gray[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8:
            raise UserError(
                f"{one} and takes uint8; INT8 Studio feeds colour frames: export it taking "
                "float (then `int8-studio adapt` writes a copy that takes colour) or three "
                "channels"
            )
        raise GrayscaleModel(
            f"{one} (grayscale); INT8 Studio feeds colour frames: let `int8-studio adapt "
            f"--model {model_file}` write a copy that takes RGB and converts it to gray as its "
            "first node (BT.601 luma, as OpenCV computes it), and open that"
        )
    dims = [
        d.dim_value if d.HasField("dim_value") else None
        for d in images[0].type.tensor_type.shape.dim
    ]
    if dims[0] is not None and dims[0] > 1:
        raise UserError(
            f"{model_file}: its input has a fixed batch of {dims[0]} images; INT8 Studio feeds "
            "one image at a time: export it with batch 1 or a dynamic batch"
        )
    if any(d is not None and d > MAX_INPUT_SIDE for d in dims[1:]):
        raise UserError(
            f"{model_file}: input shape {dims} is larger than INT8 Studio runs (sides up to "
            f"{MAX_INPUT_SIDE}); export it at a smaller input size"
        )


# Ops that only exist in an already-quantized graph: explicit Q/DQ pairs, or ONNX Runtime's
# fused integer kernels.
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "ConvInteger",
        "MatMulInteger",
    }
)


def quantized_node_count(model: onnx.ModelProto) -> int:
    """How many nodes of the main graph are quantization ops (0: a float model)."""
    return sum(node.op_type in QUANTIZED_OPS for node in model.graph.node)


def already_int8_note(model_file: Path, count: int) -> str:
    """What the app says of a model that is INT8 already, in spec notes and in `quantize`."""
    return (
        f"{model_file.name} is already INT8 ({count} quantization nodes): it runs as INT8 as it "
        "is (the fp32 variant is this INT8 model); quantizing it again would only add "
        "conversions, so no int8 variant is made"
    )
