"""The copy of a model that the app can open, where the model itself cannot be: float16
widened to float32 and a converter's Casts left float32 to float32 removed (`upcast`), nodes put
in dependency order (`node_order`: float16 converters leave them out of order), a batch axis
added to an image input without one (`batch_axis`: torchvision's detectors), RGB taken into a
one-channel model (`gray_input`), the original picture's size a detector takes beside the image
computed from the image (`size_inputs`: PaddleDetection, RT-DETR). Written beside the model,
never over it, atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from app.core.atomic import atomic_path
from app.core.errors import UnorderedModel, UserError
from app.core.model.batch_axis import add_batch_axis
from app.core.model.checks import load_valid_onnx
from app.core.model.files import find_model_file
from app.core.model.gray_input import add_color_input
from app.core.model.size_inputs import feed_size_inputs
from app.core.model.upcast import drop_noop_casts, upcast_model
from app.core.model.workspace import default_root


@dataclass(frozen=True)
class AdaptedCopy:
    path: Path
    widened: int  # float16 weights, types and attributes made float32
    reordered: bool  # nodes put in dependency order
    batched: bool  # a batch axis added to the image input
    colored: bool  # RGB in, converted to the model's one channel by its first node
    casts_dropped: int = 0  # leftover Casts from float32 to float32 (a converter's) removed
    sized: tuple[str, ...] = ()  # size inputs now computed from the image

    def summary(self) -> str:
        done = []
        if self.widened:
            done.append(f"{self.widened} float16 weights, types and attributes widened")
        if self.reordered:
            done.append("nodes put in order")
        if self.batched:
            done.append("a batch axis added to the input")
        if self.colored:
            done.append("RGB in, converted to gray by its first node")
        if self.sized:
            done.append(f"{', '.join(self.sized)} computed from the image (boxes in its pixels)")
        if self.casts_dropped:
            done.append(f"{self.casts_dropped} leftover float32-to-float32 Casts removed")
        return ", ".join(done)


def default_output(model_file: Path, widened: bool) -> Path:
    """`<stem>.fp32.onnx` for a widened copy (what it is), else `<stem>.adapted.onnx`."""
    return model_file.with_name(f"{model_file.stem}.{'fp32' if widened else 'adapted'}.onnx")


def write_adapted_copy(model_file: Path, out: Path | None = None) -> AdaptedCopy:
    """Write the copy of `model_file` the app can open (default: beside it, `default_output`;
    in the user's data folder, `adapted/`, when the model's folder is read-only). `UserError`
    when the model needs none of it."""
    model_file = find_model_file(Path(model_file))
    try:
        model, reordered = load_valid_onnx(model_file), False
    except UnorderedModel:
        model, reordered = load_valid_onnx(model_file, order_nodes=True), True
    wide, widened = upcast_model(model)
    dropped = drop_noop_casts(wide)
    sized = tuple(feed_size_inputs(wide))  # first: the others look for one input
    batched = add_batch_axis(wide)
    colored = add_color_input(wide)
    if not (widened or reordered or batched or colored or dropped or sized):
        raise UserError(
            f"{model_file}: needs no copy (float32, in order, batched, 3 channels, the image "
            "its only input); open it as it is"
        )
    beside = default_output(model_file, bool(widened))
    if out is None and not os.access(model_file.parent, os.W_OK):
        out = default_root().parent / "adapted"  # a read-only model folder: the user's data
        out.mkdir(parents=True, exist_ok=True)
    out = Path(out) if out else beside
    if out.is_dir():  # a folder: the copy goes in it, under its default name
        out = out / beside.name
    if out.resolve() == model_file.resolve():
        raise UserError(f"{out}: is the model itself; choose another --out")
    try:
        onnx.checker.check_model(wide)
    except onnx.checker.ValidationError as exc:  # an op whose FP32 form the graph cannot take
        first = str(exc).strip().splitlines()[0][:160]
        raise UserError(f"{model_file}: its adapted copy is not a valid graph ({first})") from exc
    with atomic_path(out) as tmp:
        onnx.save(wide, str(tmp))
    return AdaptedCopy(out, widened, reordered, batched, colored, dropped, sized)
