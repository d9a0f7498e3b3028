"""The command-line arguments several commands share, each declared once.

Every command adds them through these functions, so a flag means the same thing with the same
help everywhere; defaults come from app.core.defaults, which the GUI reads too.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from app.backends.registry import BACKENDS
from app.core import defaults
from app.core.model.spec import RESIZE_MODES
from app.core.model.workspace import Workspace
from app.core.quant.quantize import TARGETS

Parser = argparse.ArgumentParser
# The model input sizes the app runs (app.core.model.spec's Preprocess.validate): checked while
# parsing, so a 20000x20000 size never reaches ONNX Runtime (4.8 GB and 40 s before the refusal).
MIN_SIDE, MAX_SIDE = 8, 8192


def parse_size(text: str) -> list[int]:
    """'384x512' -> [384, 512] (height, width); argparse reports anything else as a usage error."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 416x416, not '{text}'") from exc
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise argparse.ArgumentTypeError(
            f"size {text}: height and width must be between {MIN_SIDE} and {MAX_SIDE}"
        )
    return [h, w]


def probability(text: str) -> float:
    """A threshold in [0, 1] (--conf, --iou); NaN and anything outside are usage errors."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from exc
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: must be between 0 and 1")
    return value


def fraction(text: str) -> float:
    """A share of something in (0, 1] (--fraction, --max-fraction)."""
    value = probability(text)
    if value == 0.0:
        raise argparse.ArgumentTypeError(f"{text}: must be more than 0 (and at most 1)")
    return value


def points(text: str) -> float:
    """A non-negative number of accuracy points (--target-drop); NaN and below 0 are refused."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from exc
    if math.isnan(value) or math.isinf(value) or value < 0.0:
        raise argparse.ArgumentTypeError(f"{text}: must be a number of points, 0 or more")
    return value


def positive_int(text: str) -> int:
    """A count of at least 1 (--count, --iterations, --max-frames, --topk, --threads...)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """A count that may be 0 (--warmup)."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from exc
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text}: must be {minimum} or more")
    return value


def folder_to_write(text: str) -> str:
    """A folder that exists or can be made (--output, --workspace): not an existing file, and
    the nearest existing parent is a folder we may write in."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder; choose a folder")
    _check_writable_parent(path if path.is_dir() else path.parent, text)
    return text


def file_to_write(text: str) -> str:
    """A file to (over)write (--json, --plot): not a folder, in a folder we may write in."""
    if text == "-":
        return text
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a regular file; give a file name")
    _check_writable_parent(path.parent, text)
    return text


def file_to_read(text: str) -> str:
    """An existing, readable regular file (--image, --coco)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a regular file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable (permission denied)")
    return text


def _check_writable_parent(folder: Path, text: str) -> None:
    """The nearest existing ancestor of `folder` must be a folder we may write in."""
    probe = folder if str(folder) else Path(".")
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {probe} (permission denied)")


def comma_list(text: str) -> list[str]:
    """'fp32, int8,' -> ['fp32', 'int8']: the names of a comma-separated list, blanks dropped."""
    return [v.strip() for v in text.split(",") if v.strip()]


def add_model(p: Parser, *, required: bool = True) -> None:
    """Optional where a command can take the model from its workspace instead."""
    p.add_argument("--model", required=required, help=".onnx file or checkpoint folder")


def add_size(p: Parser) -> None:
    p.add_argument(
        "--size", type=parse_size, help="input size HxW for dynamic-size models, e.g. 384x512"
    )


def add_workspace(p: Parser, *, required: bool = True) -> None:
    """Required: an existing workspace (commands after `calibrate`); else one to create or reuse."""
    if required:
        p.add_argument("--workspace", required=True, help="the folder `calibrate` printed")
    else:
        p.add_argument(
            "--workspace",
            type=folder_to_write,
            help="workspace folder (default: in the user data folder)",
        )


def add_json(p: Parser, what: str = "the report", *, stdout: bool = False) -> None:
    """`--json FILE` writes `what` as JSON (to `args.json_out`); with `stdout`, a bare `--json`
    prints it instead."""
    if stdout:
        p.add_argument(
            "--json",
            dest="json_out",
            nargs="?",
            const="-",
            type=file_to_write,
            help="write JSON (to stdout with no file)",
        )
    else:
        p.add_argument("--json", dest="json_out", type=file_to_write, help=f"write {what} as JSON")


def add_variants(p: Parser, *, every_recorded: bool = False) -> None:
    """`args.variants`: a list of variant names; with `every_recorded`, None when not given
    (`workspace_variants` then names them)."""
    p.add_argument(
        "--variants",
        type=comma_list,
        default=None if every_recorded else ",".join(defaults.VARIANTS),
        help="comma-separated variant names (fp32 is the model itself)"
        + ("; default: fp32 and every variant the workspace has" if every_recorded else ""),
    )


def workspace_variants(ws: Workspace, names: list[str] | None) -> list[str]:
    """`names`, or fp32 and every variant recorded in `ws` (int8-ov, int8-trt, int8-mp... too, not
    only the default fp16 and int8): the default order first, then by name. A damaged one stays
    in the list, so the command says it is damaged rather than leaving it out unmentioned."""
    if names:
        return names
    have = [v["name"] for v in ws.variants()]
    first = [n for n in defaults.VARIANT_ORDER if n == "fp32" or n in have]
    return first + sorted(n for n in have if n not in first)


def add_backend(p: Parser) -> None:
    p.add_argument(
        "--backend", choices=BACKENDS, default=defaults.BACKEND, help="where the model runs"
    )


def add_backends(p: Parser) -> None:
    """`args.backends`: a list of backend names (unavailable ones are skipped by the command)."""
    p.add_argument(
        "--backends",
        type=comma_list,
        default=defaults.BACKEND,
        help=f"comma-separated: {', '.join(BACKENDS)}",
    )


def add_target(p: Parser) -> None:
    p.add_argument(
        "--target",
        choices=TARGETS,
        default=defaults.QUANTIZE_TARGET,
        help="where the INT8 graph will run (decides Q/DQ placement)",
    )


def add_tf32(p: Parser) -> None:
    p.add_argument(
        "--tf32",
        action="store_true",
        help="CUDA: allow TF32 convolutions in FP32 graphs (faster, scores move by ~1e-2)",
    )


def add_eval_truth(p: Parser) -> None:
    """Evaluation images and, optionally, their labels (YOLO txt folder or COCO JSON)."""
    p.add_argument("--images", required=True, help="evaluation images (not the calibration ones)")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--labels", help="folder of YOLO .txt labels (default: ../labels if present)"
    )
    group.add_argument("--coco", type=file_to_read, help="COCO annotation JSON")


def add_corrections(p: Parser) -> None:
    """What the Model tab can set: a spec file and/or one flag per field (`corrections`)."""
    add_size(p)
    p.add_argument(
        "--spec",
        dest="spec_file",
        help="JSON of the fields below (`inspect --write-spec FILE` writes one to edit)",
    )
    p.add_argument("--resize", choices=RESIZE_MODES, help="how frames are resized to the input")
    p.add_argument("--color", choices=("RGB", "BGR"), help="channel order the model wants")
    p.add_argument("--scale", type=float, help="pixel multiplier before mean/std, e.g. 0.0039216")
    p.add_argument("--mean", type=three_floats, help="per-channel mean, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", type=three_floats, help="per-channel std, e.g. 0.229,0.224,0.225")
    p.add_argument(
        "--class-names", help='class names: a .txt (one per line) or JSON {"classes": [...]}'
    )


def three_floats(text: str) -> list[float]:
    """'0.5,0.5,0.5' (or one number for all three) -> three floats."""
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"give three numbers like 0.5,0.5,0.5, not '{text}'"
        ) from exc
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"give three numbers like 0.5,0.5,0.5, not '{text}'")
    return values


def add_target_drop(p: Parser) -> None:
    """The user's accuracy target: how far below FP32 a variant may score."""
    bars = ", ".join(f"{k} {v:g}" for k, v in defaults.MIN_AGREEMENT.items())
    p.add_argument(
        "--target-drop",
        type=points,
        default=defaults.TARGET_DROP,
        help="largest accepted drop vs FP32 (mAP points or top-1 points; without labels the "
        f"agreement bars apply: {bars})",
    )


def add_allow_stale(p: Parser) -> None:
    p.add_argument(
        "--allow-stale",
        action="store_true",
        help="use variants built from an older calibration or preprocessing (else refused)",
    )


def variant_target(ws: Workspace | None, name: str) -> str | None:
    """The Q/DQ layout (target) the workspace's variant `name` was built for, if it has one."""
    if ws is None or name == "fp32":
        return None
    return (ws.variant_meta(name) or {}).get("target")


def layout_note_of(ws: Workspace | None, name: str, backend: str) -> str | None:
    """`targets.layout_note` of the workspace's variant `name` run on `backend`."""
    from app.core.quant.targets import layout_note

    return layout_note(name, variant_target(ws, name), backend)


def layout_line(ws: Workspace, names: list[str], backend: str) -> str | None:
    """`targets.layout_summary` of the workspace's variants `names` on `backend`."""
    from app.core.quant.targets import layout_summary

    targets = {n: variant_target(ws, n) for n in names if n != "fp32"}
    return layout_summary(targets, backend, {v["name"] for v in ws.variants() if v["valid"]})
