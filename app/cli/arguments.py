"""The command-line arguments several commands share, each declared once.

Every command adds them through these functions, so a flag means the same thing with the same
help everywhere; defaults come from app.core.defaults, which the GUI reads too.
"""

from __future__ import annotations

import argparse

from app.backends.registry import BACKENDS
from app.core import defaults
from app.core.model.spec import RESIZE_MODES
from app.core.quant.quantize import TARGETS

Parser = argparse.ArgumentParser


def parse_size(text: str) -> list[int]:
    """'384x512' -> [384, 512] (height, width); argparse reports anything else as a usage error."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 416x416, not '{text}'") from exc
    return [h, w]


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
        p.add_argument("--workspace", help="workspace folder (default: in the user data folder)")


def add_json(p: Parser, what: str = "the report", *, stdout: bool = False) -> None:
    """`--json FILE` writes `what` as JSON (to `args.json_out`); with `stdout`, a bare `--json`
    prints it instead."""
    if stdout:
        p.add_argument(
            "--json",
            dest="json_out",
            nargs="?",
            const="-",
            help="write JSON (to stdout with no file)",
        )
    else:
        p.add_argument("--json", dest="json_out", help=f"write {what} as JSON")


def add_variants(p: Parser) -> None:
    """`args.variants`: a list of variant names."""
    p.add_argument(
        "--variants",
        type=comma_list,
        default=",".join(defaults.VARIANTS),
        help="comma-separated variant names (fp32 is the model itself)",
    )


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
    group.add_argument("--coco", help="COCO annotation JSON")


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


def add_allow_stale(p: Parser) -> None:
    p.add_argument(
        "--allow-stale",
        action="store_true",
        help="use variants built from an older calibration or preprocessing (else refused)",
    )
