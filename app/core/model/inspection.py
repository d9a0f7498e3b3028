"""`inspect_model`: a `ModelSpec` for an ONNX file, from its graph, sidecars and presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.model.checks import already_int8_note, load_checked_model, quantized_node_count
from app.core.model.files import file_sha256, find_model_file
from app.core.model.guessing import guess_spec
from app.core.model.presets import match_preset
from app.core.model.sidecars import drop_mismatched_labels, read_sidecars
from app.core.model.spec import ModelSpec


def _dims(value_info: Any) -> list[int | str]:
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return dims


def inspect_model(
    path: str | Path, *, size: list[int] | None = None, probe_images: list[Path] | None = None
) -> ModelSpec:
    """Build a `ModelSpec` for an `.onnx` file or checkpoint folder.

    `size` ([height, width]) chooses the input size of a model whose size is dynamic.
    `probe_images`: a few of the user's photos to judge a detector's output layout on (else
    synthetic frames).
    Raises `UserError` for files that are not usable ONNX vision models.
    """
    model_file = find_model_file(Path(path)).resolve()
    model = load_checked_model(model_file)
    sha = file_sha256(model_file)
    graph = model.graph
    init_names = {init.name for init in graph.initializer}
    inputs = {vi.name: _dims(vi) for vi in graph.input if vi.name not in init_names}
    outputs = {vi.name: _dims(vi) for vi in graph.output}
    sidecars = read_sidecars(model_file.parent, model_file)
    preset, preset_problems = match_preset(sha, inputs, outputs, model)
    spec = guess_spec(model_file, model, sha, inputs, outputs, sidecars, preset, size, probe_images)
    spec.problems[:0] = preset_problems
    quantized = quantized_node_count(model)
    if quantized:
        spec.notes.append(already_int8_note(model_file, quantized))
    return drop_mismatched_labels(spec, sidecars)
