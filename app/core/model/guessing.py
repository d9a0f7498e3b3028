"""Guess a model's task, layout, preprocessing and decoder from its graph, sidecars and presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from app.core.errors import UserError
from app.core.model.files import read_label_file
from app.core.model.sidecars import Sidecars
from app.core.model.spec import ModelSpec, Postprocess, Preprocess, palette_color
from app.core.ort_session import cpu_session
from app.core.resources import resources_dir

IMAGENET_MEAN = [0.485, 0.456, 0.406]
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


def probe_outputs(model_file: Path, input_name: str, shape: list[int]) -> dict[str, np.ndarray]:
    """Run the model once on a mid-grey input on the CPU to learn its output shapes and ranges."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        # severity 4: the failure is reported below, in one line
        sess = cpu_session(model_file, threads=1, log_severity=4)
        feed = {input_name: np.full(shape, 0.5, dtype=np.float32)}
        values = sess.run(None, feed)
    except Exception as exc:  # ORT raises several unrelated types for unusable graphs
        first = str(exc).strip().splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"{model_file}: ONNX Runtime cannot run this model ({first})") from exc
    finally:
        ort.set_default_logger_severity(2)
    return {o.name: v for o, v in zip(sess.get_outputs(), values)}


def _is_yolox_grid(anchors: int, hw: tuple[int, int], strides: list[int]) -> bool:
    return anchors == sum((hw[0] // s) * (hw[1] // s) for s in strides)


def _guess_decoder(
    outputs: dict[str, np.ndarray], hw: tuple[int, int], model_file: Path
) -> tuple[str, Postprocess, int, list[str]]:
    """(task, postprocess, number of classes, notes) from probed output arrays."""
    notes: list[str] = []
    names = list(outputs)
    shapes = {k: v.shape for k, v in outputs.items()}
    lower = {k.lower(): k for k in names}
    if "boxes" in lower and "scores" in lower:
        notes.append("outputs boxes/scores: already-decoded detections (guessed)")
        return (
            "detection",
            Postprocess(decoder="boxes_labels_scores", boxes_normalized=True),
            0,
            notes,
        )
    if len(names) == 1:
        out = outputs[names[0]]
        if out.ndim == 2:
            rows = out.astype(np.float64)
            probs = bool(np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))
            notes.append(
                "one [N, classes] output: classifier, "
                + ("already softmax" if probs else "logits (softmax applied)")
            )
            return "classification", Postprocess(apply_softmax=not probs), out.shape[1], notes
        if out.ndim == 3 and out.shape[-1] >= 6:
            if out.shape[-1] > 6 and _is_yolox_grid(out.shape[1], hw, [8, 16, 32]):
                notes.append("output [1, anchors, 5+classes] on a stride 8/16/32 grid: YOLOX raw")
                return "detection", Postprocess(decoder="yolox_raw"), out.shape[-1] - 5, notes
            if out.shape[-1] == 6:
                notes.append("output [1, N, 6]: decoded x, y, w, h, class, score (guessed)")
                return "detection", Postprocess(decoder="boxes_xywh_cls_prob"), 0, notes
    desc = ", ".join(f"{k} {list(v)}" for k, v in shapes.items())
    raise UserError(
        f"{model_file}: cannot tell what the outputs mean ({desc}); add a preset JSON to say "
        "which decoder to use"
    )


def guess_spec(
    model_file: Path,
    model: onnx.ModelProto,
    sha: str,
    inputs: dict[str, list],
    outputs: dict[str, list],
    sidecars: Sidecars,
    preset: dict[str, Any] | None,
    size: list[int] | None,
) -> ModelSpec:
    input_name, shape = next((n, s) for n, s in inputs.items() if len(s) == 4)
    notes = list(sidecars.notes)
    problems = list(sidecars.problems)
    layout = _layout(shape)
    h_dim, w_dim = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    dynamic = not (isinstance(h_dim, int) and isinstance(w_dim, int))
    pre = Preprocess(layout=layout)
    post = Postprocess()
    if preset:
        notes.append(f"preset: {preset['name']} ({preset['_file']})")
        pre = Preprocess(**{**pre.__dict__, **preset.get("preprocess", {}), "layout": layout})
        post = Postprocess(**{**post.__dict__, **preset.get("postprocess", {})})
    if not dynamic:
        pre.size = [int(h_dim), int(w_dim)]
        pre.short_side = None
    elif size:
        pre.size = [int(size[0]), int(size[1])]
        pre.short_side = None  # an explicit size pins the shape (calibration, engines)
        notes.append(f"dynamic input size; using {size[0]}x{size[1]} as chosen")
    else:
        notes.append(f"dynamic input size; using {pre.size[0]}x{pre.size[1]} (choose with --size)")
    hw = (pre.size[0], pre.size[1])
    batch = shape[0] if isinstance(shape[0], int) else 1
    probe_shape = [batch, 3, hw[0], hw[1]] if layout == "NCHW" else [batch, hw[0], hw[1], 3]
    try:
        probed = probe_outputs(model_file, input_name, probe_shape)
    except UserError as exc:
        if dynamic and not size:
            raise UserError(
                f"{exc}; its input size is dynamic and {hw[0]}x{hw[1]} did not work: choose "
                "the size it was made for with --size HxW (in the GUI: the Model tab)"
            ) from exc
        raise
    task, guessed_post, n_classes, decoder_notes = _guess_decoder(probed, hw, model_file)
    if preset:
        task = preset.get("task", task)
        post.apply_softmax = preset.get("postprocess", {}).get(
            "apply_softmax", guessed_post.apply_softmax
        )
    else:
        post = guessed_post
        notes += decoder_notes
        _guess_preprocess(pre, task, post, sidecars, model, input_name, notes)
    if preset and preset.get("ignore_norm_stats") and sidecars.mean is not None:
        notes.append(f"norm_stats.json not applied: {preset['ignore_norm_stats']}")
    labels, colors = _labels(sidecars, preset, n_classes, post, probed, problems)
    pre.validate()
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
    in_graph = _graph_normalises_input(model, input_name)
    if sidecars.mean is not None and not in_graph:
        pre.scale, pre.mean, pre.std = 1 / 255, sidecars.mean, sidecars.std
    elif sidecars.mean is not None and in_graph:
        pre.scale, pre.mean, pre.std = 1 / 255, [0.0] * 3, [1.0] * 3
        notes.append("the graph normalises its input itself; norm_stats.json not applied again")
    elif in_graph:
        pre.scale, pre.mean, pre.std = 1 / 255, [0.0] * 3, [1.0] * 3
        notes.append("the graph normalises its input; feeding RGB 0..1 (guessed)")
    else:
        pre.scale, pre.mean, pre.std = 1 / 255, IMAGENET_MEAN, IMAGENET_STD
        notes.append("no normalisation info: ImageNet mean/std assumed (guessed; check it)")
    notes.append(f"resize mode '{pre.resize}', RGB (guessed)")


def _labels(
    sidecars: Sidecars,
    preset: dict[str, Any] | None,
    n_classes: int,
    post: Postprocess,
    probed: dict[str, np.ndarray],
    problems: list[str],
) -> tuple[list[str], list[list[int]]]:
    labels = sidecars.labels
    colors = [list(c) for c in sidecars.colors] if sidecars.colors else None
    if preset and "labels" in preset:
        labels = list(preset["labels"])
    if labels is None and preset:
        if preset.get("labels_fallback"):
            fallback = resources_dir() / "labels" / f"{preset['labels_fallback']}.txt"
            labels = read_label_file(fallback)
    if not n_classes and post.decoder == "classifier":
        n_classes = next(iter(probed.values())).shape[-1]
    if post.decoder == "yolox_raw" and not n_classes:
        n_classes = next(iter(probed.values())).shape[-1] - 5
    labels = labels or [f"class {i}" for i in range(n_classes)]
    if n_classes and len(labels) != n_classes:
        problems.append(
            f"the label list has {len(labels)} names but the model has {n_classes} classes; "
            + (
                "extra names ignored"
                if len(labels) > n_classes
                else "missing ones shown as numbers"
            )
        )
        labels = (labels + [f"class {i}" for i in range(len(labels), n_classes)])[:n_classes]
        if colors:
            colors = colors[:n_classes]
    if not colors or len(colors) < len(labels):
        colors = (colors or []) + [
            list(palette_color(i)[::-1]) for i in range(len(colors or []), len(labels))
        ]
    return labels, colors
