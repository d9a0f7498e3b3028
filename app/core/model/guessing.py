"""Guess a model's task, layout, preprocessing and decoder from its graph, sidecars and presets."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from app.core.errors import UserError
from app.core.model.batch_axis import is_batch_axis_copy
from app.core.model.gray_input import is_gray_copy
from app.core.model.label_guess import guess_labels
from app.core.model.metadata import ModelMetadata, read_metadata
from app.core.model.output_formats import recognise
from app.core.model.paired_outputs import decoded_boxes_labels_scores
from app.core.model.presets import user_presets_dir
from app.core.model.probing import read_probe_frames, run_probes
from app.core.model.sidecars import Sidecars
from app.core.model.spec import DECODERS, ModelSpec, Postprocess, Preprocess
from app.core.resources import resources_dir

IMAGENET_MEAN = [0.485, 0.456, 0.406]
CLASSIFIER_SIZE = (224, 224)
IMAGENET_STD = [0.229, 0.224, 0.225]
NORMALISING_OPS = {"Sub", "Div", "Mul", "Add"}


def _layout(shape: list[int | str]) -> str:
    if shape[1] in (1, 3):
        return "NCHW"
    if shape[3] in (1, 3):
        return "NHWC"
    return "NCHW"


def _graph_normalises_input(model: onnx.ModelProto, input_name: str) -> bool:
    """True when the first op on the image input is arithmetic with a constant (Sub/Div/Mul)."""
    consts = {init.name for init in model.graph.initializer}
    consts |= {out for n in model.graph.node if n.op_type == "Constant" for out in n.output}
    for node in model.graph.node:
        if input_name in node.input and node.op_type in NORMALISING_OPS:
            others = [i for i in node.input if i != input_name]
            return bool(others) and all(o in consts for o in others)
    return False


def _class_axis(shape: tuple[int, ...]) -> bool:
    """[N, C] or the same scores with unit axes around them: [N, C, 1, 1] (a conv head without
    a flatten, e.g. SqueezeNet), [N, 1, C]."""
    return len(shape) >= 2 and sum(d > 1 for d in shape[1:]) == 1


def _classifier(outputs: dict[str, np.ndarray]) -> tuple[str, Postprocess, int, list[str]]:
    raw = next(iter(outputs.values()))
    rows = raw.reshape(raw.shape[0], -1).astype(np.float64)
    probs = bool(np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))
    shape = "[N, classes]" if raw.ndim == 2 else f"{list(raw.shape)} (read as [N, classes])"
    notes = [
        f"one {shape} output: classifier, "
        + ("already softmax" if probs else "logits (softmax applied)")
    ]
    return "classification", Postprocess(apply_softmax=not probs), rows.shape[1], notes


def _guess_decoder(
    probes: list[dict[str, np.ndarray]],
    hw: tuple[int, int],
    model_file: Path,
    n_names: int | None,
    sha: str,
    batch: int = 1,
) -> tuple[str, Postprocess, int, list[str]]:
    """(task, postprocess, number of classes, notes) from outputs probed on a few frames
    (`batch` images each)."""
    outputs = probes[0]
    names = list(outputs)
    decoded = decoded_boxes_labels_scores(probes)
    if decoded is not None:
        fields, notes = decoded
        return "detection", Postprocess(decoder="boxes_labels_scores", **fields), 0, notes
    # one row of scores per image: a [K, 7] list of detections (YOLOv7's end-to-end export)
    # is 2-D too, but its rows are not the images
    per_image = len(names) == 1 and all(p[names[0]].shape[:1] == (batch,) for p in probes)
    if per_image and (
        outputs[names[0]].ndim == 2
        or (outputs[names[0]].ndim == 4 and _class_axis(outputs[names[0]].shape))
        or (outputs[names[0]].ndim == 3 and outputs[names[0]].shape[1] == 1)
    ):
        return _classifier(outputs)
    found, notes, _ = recognise(probes, hw, n_names)
    if found is not None:
        post = Postprocess(decoder=found.decoder, **found.fields)
        return "detection", post, found.n_classes, notes
    desc = ", ".join(f"{k} {list(v.shape)}" for k, v in outputs.items())
    why = f" ({'; '.join(notes)})" if notes else ""
    detectors = ", ".join(d for d in DECODERS if d != "classifier")
    raise UserError(
        f"{model_file}: cannot tell what the outputs mean ({desc}){why}; if you know their "
        f"layout, save a preset naming its decoder as {user_presets_dir() / 'NAME.json'}, e.g. "
        f'{{"match": {{"sha256": ["{sha}"]}}, "task": "detection", "postprocess": '
        f'{{"decoder": "yolov5"}}}} (decoders: {detectors}; examples in '
        f"{resources_dir() / 'presets'})"
    )


def _input_is_uint8(model: onnx.ModelProto, input_name: str) -> bool:
    vi = next(v for v in model.graph.input if v.name == input_name)
    return vi.type.tensor_type.elem_type == onnx.TensorProto.UINT8


def _probe_preprocess(pre: Preprocess, preset: dict | None, meta: ModelMetadata) -> Preprocess:
    """The preprocessing to probe with: the known one, else RGB /255 (most detectors' input)."""
    if preset or meta.ultralytics or pre.input_dtype == "uint8":
        return pre
    return replace(pre, color="RGB", scale=1 / 255, mean=[0.0] * 3, std=[1.0] * 3)


def _ultralytics_preprocess(pre: Preprocess, meta: ModelMetadata, notes: list[str]) -> None:
    """Ultralytics' own: letterbox centred, pad 114, RGB, /255 (RT-DETR: stretched)."""
    pre.resize = "stretch" if meta.rt_detr else "letterbox"
    pre.pad_center, pre.pad_value, pre.color = True, 114.0, "RGB"
    pre.scale, pre.mean, pre.std = 1 / 255, [0.0] * 3, [1.0] * 3
    pre.stride = meta.stride or pre.stride
    if meta.task == "classify":
        pre.resize = "resize_crop"


def _uint8_preprocess(pre: Preprocess, notes: list[str], keep_resize: bool) -> None:
    """A uint8 input takes pixels as they are; with nothing else known, RGB stretched to size
    (TensorFlow/TFLite exports, the usual source of uint8 inputs)."""
    pre.input_dtype = "uint8"
    pre.scale, pre.mean, pre.std = 1.0, [0.0] * 3, [1.0] * 3
    if not keep_resize:
        pre.resize, pre.color = "stretch", "RGB"
    notes.append(f"uint8 image input: {pre.color} pixels handed in as they are ({pre.resize})")


class _PresetDoesNotFit(Exception):
    """A preset matched by input/output names only, whose layout the outputs contradict."""


def guess_spec(
    model_file: Path,
    model: onnx.ModelProto,
    sha: str,
    inputs: dict[str, list],
    outputs: dict[str, list],
    sidecars: Sidecars,
    preset: dict[str, Any] | None,
    size: list[int] | None,
    probe_images: list[Path] | None = None,
) -> ModelSpec:
    """The spec of one model; `probe_images` (the user's own photos, a few are read) let the
    output layout be judged on real detections, else synthetic frames are used."""
    args = (model_file, model, sha, inputs, outputs, sidecars)
    try:
        return _guess_spec(*args, preset, size, probe_images)
    except _PresetDoesNotFit as exc:
        # e.g. an older YOLOv5 export: input "images", output "output", like official YOLOX
        spec = _guess_spec(*args, None, size, probe_images)
        spec.notes.insert(0, str(exc))
        return spec


def _guess_spec(
    model_file: Path,
    model: onnx.ModelProto,
    sha: str,
    inputs: dict[str, list],
    outputs: dict[str, list],
    sidecars: Sidecars,
    preset: dict[str, Any] | None,
    size: list[int] | None,
    probe_images: list[Path] | None,
) -> ModelSpec:
    input_name, shape = next((n, s) for n, s in inputs.items() if len(s) == 4)
    meta = read_metadata(model)
    notes = list(sidecars.notes) + meta.notes
    problems = list(sidecars.problems) + meta.problems
    layout = _layout(shape)
    h_dim, w_dim = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    dynamic = not (isinstance(h_dim, int) and isinstance(w_dim, int))
    pre = Preprocess(layout=layout)
    post = Postprocess()
    if meta.ultralytics:  # first: a preset naming only a decoder keeps the export's own
        _ultralytics_preprocess(pre, meta, notes)  # preprocessing, as its notes say
    if preset:
        how = preset.get("_matched_by", "file hash")
        notes.append(f"preset: {preset['name']} ({preset['_file']}, matched by {how})")
        pre = Preprocess(**{**pre.__dict__, **preset.get("preprocess", {}), "layout": layout})
        post = Postprocess(**{**post.__dict__, **preset.get("postprocess", {})})
    if _input_is_uint8(model, input_name):
        _uint8_preprocess(pre, notes, keep_resize=bool(preset or meta.ultralytics))
    if not dynamic:
        pre.size = [int(h_dim), int(w_dim)]
        pre.short_side = None
        if size and [int(size[0]), int(size[1])] != pre.size:
            notes.append(
                f"the size asked for, {size[0]}x{size[1]}, is not used: this model's input is "
                f"fixed at {h_dim}x{w_dim}"
            )
    elif size:
        pre.size = [int(size[0]), int(size[1])]
        pre.short_side = None  # an explicit size pins the shape (calibration, engines)
        notes.append(f"dynamic input size; using {size[0]}x{size[1]} as chosen")
    elif meta.imgsz:
        pre.size, pre.short_side = list(meta.imgsz), None
        notes.append(f"dynamic input size; using {pre.size[0]}x{pre.size[1]} from the metadata")
    else:
        notes.append(f"dynamic input size; using {pre.size[0]}x{pre.size[1]} (choose with --size)")
    size_guessed = dynamic and not size and not meta.imgsz
    size_guessed = size_guessed and not (preset and "size" in preset.get("preprocess", {}))
    hw = (pre.size[0], pre.size[1])
    batch = shape[0] if isinstance(shape[0], int) else 1
    frames, real = read_probe_frames(probe_images)
    try:
        probes, batch_problem = run_probes(
            model_file,
            input_name,
            _probe_preprocess(pre, preset, meta),
            frames,
            batch,
            try_batch=0 if isinstance(shape[0], int) else 2,
        )
    except UserError as exc:
        if dynamic and not size:
            raise UserError(
                f"{exc}; its input size is dynamic and {hw[0]}x{hw[1]} did not work: choose "
                "the size it was made for with --size HxW (in the GUI: the Model tab)"
            ) from exc
        if dynamic:  # the size the user chose: most detectors take multiples of their stride
            up = [-(-int(v) // 32) * 32 for v in hw]
            raise UserError(
                f"{exc}; {hw[0]}x{hw[1]}, the size asked for, did not work: choose one this "
                f"model takes (detectors usually want multiples of 32, e.g. {up[0]}x{up[1]})"
            ) from exc
        raise
    n_names = len(meta.names or sidecars.labels or []) or None
    try:
        task, guessed_post, n_classes, decoder_notes = _guess_decoder(
            probes, hw, model_file, n_names, sha, batch
        )
    except UserError:
        if not preset:
            raise
        task, guessed_post, n_classes, decoder_notes = preset.get("task", ""), post, 0, []
    # a hash or whole-structure match is this network; names alone may be another one
    by_hash = bool(preset) and preset.get("_matched_by", "file hash") != "input/output names"
    # names alone are kept only when the outputs read as the preset's layout
    if preset and not by_hash and (guessed_post.decoder != post.decoder or not decoder_notes):
        raise _PresetDoesNotFit(
            f"preset {preset['name']} matched only by input/output names, and its "
            f"{post.decoder} layout does not fit these outputs; not used"
        )
    if preset:
        task = preset.get("task", task)
        if guessed_post.decoder == post.decoder and "transposed" not in preset.get(
            "postprocess", {}
        ):
            post.transposed = guessed_post.transposed  # e.g. a YOLOX export ending in Transpose
        post.apply_softmax = preset.get("postprocess", {}).get(
            "apply_softmax", guessed_post.apply_softmax
        )
    else:
        post = guessed_post
        notes += decoder_notes
        if (
            post.decoder == "boxes_labels_scores"
            and not (meta.names or sidecars.labels)
            and is_batch_axis_copy(model)
        ):  # torchvision's detectors: labels are COCO category ids, 0 the background
            post.class_offset = 1
            notes.append(
                "torchvision-style export (one image in, boxes, labels and scores out): labels "
                "read as COCO category ids, 1 = person (guessed; give the class names of a "
                "model trained on other classes)"
            )
        notes.append(f"output layout judged on {len(frames)} {'' if real else 'synthetic '}frames")
        if not meta.ultralytics and pre.input_dtype != "uint8":
            _guess_preprocess(pre, task, post, sidecars, model, input_name, notes)
    if size_guessed and task == "classification":
        # a detector's default size is not a classifier's: ImageNet models (timm, torchvision)
        # are made for 224 (a global pool runs at any size, so the probe's size told nothing)
        pre.size = list(CLASSIFIER_SIZE)
        notes[:] = [n for n in notes if not n.startswith("dynamic input size; using ")]
        notes.append(
            f"dynamic input size; using {CLASSIFIER_SIZE[0]}x{CLASSIFIER_SIZE[1]}, the usual "
            "classifier size (choose with --size)"
        )
    if preset and preset.get("ignore_norm_stats") and sidecars.mean is not None:
        notes.append(f"norm_stats.json not applied: {preset['ignore_norm_stats']}")
    labels, colors = guess_labels(
        sidecars, meta, preset, n_classes, post, probes[0], problems, notes
    )
    pre.validate()
    if batch_problem:  # every step then feeds one image at a time (they batch only a free N)
        shape = [1, *shape[1:]]
        node = re.search(r"while running (\w+) node", batch_problem)
        why = f"its {node.group(1)} node fails" if node else batch_problem
        notes.append(
            f"its batch size is declared free but a batch of 2 fails ({why}; the export "
            "fixed a shape); images go through one at a time"
        )
    return ModelSpec(
        path=str(model_file),
        sha256=sha,
        task=task,
        input_name=input_name,
        input_shape=shape,
        dynamic_size=dynamic,
        outputs=[{"name": k, "shape": v} for k, v in outputs.items()],
        preprocess=pre,
        postprocess=post,
        labels=labels,
        colors=colors,
        preset=preset["_file"] if preset else "",
        notes=notes,
        problems=problems,
    )


def _guess_preprocess(
    pre: Preprocess,
    task: str,
    post: Postprocess,
    sidecars: Sidecars,
    model: onnx.ModelProto,
    input_name: str,
    notes: list[str],
) -> None:
    if post.decoder == "yolox_raw":
        pre.resize, pre.color, pre.scale, pre.pad_value = "letterbox", "BGR", 1.0, 114.0
        pre.mean, pre.std = [0.0] * 3, [1.0] * 3
        notes.append("YOLOX convention assumed: letterbox, BGR, 0..255, pad 114")
        return
    pre.resize = "resize_crop" if task == "classification" else "stretch"
    pre.color = "RGB"
    torchvision = is_batch_axis_copy(model)  # one image in: torchvision's detectors
    if torchvision and task == "detection":
        pre.resize = "letterbox"  # they keep the aspect ratio when they resize inside
    in_graph = _graph_normalises_input(model, input_name)
    if sidecars.mean is not None and not in_graph:
        pre.scale, pre.mean, pre.std = 1 / 255, sidecars.mean, sidecars.std
    elif sidecars.mean is not None and in_graph:
        pre.scale, pre.mean, pre.std = 1 / 255, [0.0] * 3, [1.0] * 3
        notes.append("the graph normalises its input itself; norm_stats.json not applied again")
    elif in_graph:
        pre.scale, pre.mean, pre.std = 1 / 255, [0.0] * 3, [1.0] * 3
        notes.append("the graph normalises its input; feeding RGB 0..1 (guessed)")
    elif torchvision:
        pre.scale, pre.mean, pre.std = 1 / 255, [0.0] * 3, [1.0] * 3
        notes.append(
            "a torchvision-style export (one image in): RGB 0..1 assumed, as its own transform "
            "normalises inside the graph (guessed; check it: Find preprocessing)"
        )
    elif is_gray_copy(model, input_name):
        pre.scale, pre.mean, pre.std = 1 / 255, [0.0] * 3, [1.0] * 3
        notes.append(
            "a grayscale model's copy: gray 0..1 assumed (guessed; the same mean and std on "
            "every channel keep its gray conversion exact; check it: Find preprocessing)"
        )
    else:
        pre.scale, pre.mean, pre.std = 1 / 255, IMAGENET_MEAN, IMAGENET_STD
        notes.append(
            "no normalisation info: ImageNet mean/std assumed (guessed; check it: Find "
            "preprocessing, or inspect --find-preprocessing DIR, tries the others on your images)"
        )
    notes.append(f"resize mode '{pre.resize}', RGB (guessed)")
