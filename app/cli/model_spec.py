"""The model spec a command works with: inspected afresh, then the user's corrections on top.

Corrections come from the model's workspace (`user.json`, found by the model's hash) and this
command's `--spec` file and flags (`arguments.add_corrections`), in that order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.arguments import layout_note_of
from app.core.errors import UserError
from app.core.model.inspection import inspect_model
from app.core.model.overrides import (
    COMMAND_LINE,
    check_overrides,
    corrected_spec,
    load_spec_file,
)
from app.core.model.sidecars import read_class_names
from app.core.model.spec import ModelSpec
from app.core.model.staleness import refuse_stale
from app.core.model.workspace import Workspace, default_root
from app.core.model.workspace_index import find_workspace, workspace_holds

FLAG_FIELDS = {"size": "size", "resize": "resize", "color": "color", "scale": "scale"}


def corrections(args: argparse.Namespace) -> dict[str, Any]:
    """The fields this command's `--spec` file and flags set (flags win over the file)."""
    out = load_spec_file(args.spec_file) if getattr(args, "spec_file", None) else {}
    for flag, name in FLAG_FIELDS.items():
        if getattr(args, flag, None) is not None:
            out[name] = getattr(args, flag)
    for name in ("mean", "std"):
        if getattr(args, name, None) is not None:
            out[name] = getattr(args, name)
    if getattr(args, "class_names", None):
        out["labels"] = read_class_names(args.class_names)
    return check_overrides(out, COMMAND_LINE)


def workspace_of(spec: ModelSpec, chosen: str | None) -> Path | None:
    """The workspace whose corrections apply: the one named (if it holds this model), else the
    one found by the model's hash."""
    if chosen:
        return Path(chosen) if workspace_holds(Path(chosen), spec.sha256) else None
    return find_workspace(spec.sha256, default_root())


def model_spec(
    args: argparse.Namespace, workspace: str | None = None
) -> tuple[ModelSpec, dict[str, Any], Path | None]:
    """(spec with corrections, the merged corrections, the workspace they came from)."""
    extra = corrections(args)
    size = extra.get("size") or getattr(args, "size", None)
    spec = inspect_model(args.model, size=size)
    if not spec.dynamic_size:
        extra.pop("size", None)  # a fixed input has one size; --size is for dynamic ones
    names = extra.get("labels")
    if names and spec.labels and len(names) != len(spec.labels):
        print(
            f"warning: --class-names {args.class_names}: {len(names)} names but the model has "
            f"{len(spec.labels)} classes; not used",
            file=sys.stderr,
        )
        extra.pop("labels")
    root = workspace_of(spec, workspace)
    spec, merged = corrected_spec(spec, root, extra)
    return spec, merged, root


def moved_line(ws: Workspace) -> str | None:
    """One line when the workspace followed its model to a new path."""
    if ws.moved_from:
        return f"moved       the model moved from {ws.moved_from}; the workspace follows it"
    return None


def variant_to_run(args: argparse.Namespace) -> tuple[ModelSpec, str]:
    """`run`'s spec and ONNX file: the workspace's spec (its corrections included) when
    `--workspace` is given or the model has one, then this command's flags; `--variant` from
    that workspace (a stale one only with `--allow-stale`)."""
    if not args.model and not args.workspace:
        raise UserError("give --model (an .onnx file) or --workspace (made by `calibrate`)")
    if args.workspace:
        ws = Workspace.open(args.workspace)
        spec, _ = corrected_spec(ws.spec(), None, corrections(args))
    else:
        spec, _, root = model_spec(args)
        ws = Workspace.open(root) if root is not None else None
    if args.variant == "fp32":
        return spec, spec.path
    if ws is None:
        raise UserError(
            f"--variant {args.variant}: {args.model} has no workspace yet; run `int8-studio "
            "calibrate` and `quantize` first, or pass --workspace"
        )
    for warning in refuse_stale(ws, [args.variant], allow=args.allow_stale):
        print(f"warning: {warning}", file=sys.stderr)
    path = str(ws.require_variant(args.variant))
    if note := layout_note_of(ws, args.variant, getattr(args, "backend", "")):
        print(f"note: {note}", file=sys.stderr)
    return spec, path
