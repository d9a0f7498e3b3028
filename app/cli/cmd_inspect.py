"""`int8-studio inspect`: what a model expects and produces, as text or JSON; with
`--find-preprocessing DIR`, the preprocessing found on the user's images, with its evidence."""

from __future__ import annotations

import argparse
import json

from app.cli.arguments import add_corrections, add_json, add_model
from app.cli.model_spec import model_spec
from app.cli.output import ProgressBar, save_json, table
from app.core.atomic import write_json
from app.core.eval.preprocess_finder import find_preprocessing
from app.core.eval.preprocess_search import SearchResult
from app.core.eval.search_report import evidence_table
from app.core.model.overrides import spec_fields
from app.core.model.spec import ModelSpec


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("inspect", help="show a model's inputs, outputs, task and preprocessing")
    add_model(p)
    add_corrections(p)
    p.add_argument("--write-spec", help="write the settable fields as JSON, to edit for --spec")
    p.add_argument(
        "--find-preprocessing",
        metavar="DIR",
        help="try the usual preprocessings on ~32 images of DIR and show which one the model "
        "answers best under (classifiers: by accuracy with labels, class-named subfolders or "
        "a CSV in DIR; detectors: by objects found surely and found again mirrored)",
    )
    p.add_argument(
        "--find-labels", metavar="PATH", help="labels for --find-preprocessing (CSV or folder)"
    )
    add_json(p, stdout=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec, merged, root = model_spec(args)
    if args.write_spec:
        write_json(args.write_spec, spec_fields(spec))
    found = None
    if args.find_preprocessing:
        progress = None if args.json_out == "-" else ProgressBar("trying preprocessings")
        found = find_preprocessing(
            spec, args.find_preprocessing, args.find_labels, progress=progress
        )
    data = spec.to_dict() | ({"preprocessing_search": found.to_dict()} if found else {})
    if args.json_out == "-":
        print(json.dumps(data, indent=2))
        return 0
    save_json(args.json_out, data)
    print_spec(spec)
    if merged:
        print(f"corrections {', '.join(merged)} ({root or 'this command only; not saved'})")
    if args.write_spec:
        print(f"spec file   {args.write_spec} (edit it, then pass --spec {args.write_spec})")
    if found is not None:
        print_search(found)
        current = found.matching(spec.preprocess)
        if current is not None and current.alarm:
            print(
                f"warning     the model's current preprocessing ({current.candidate.name}): "
                f"{current.alarm}"
            )
    return 0


def print_spec(spec: ModelSpec) -> None:
    pre, post = spec.preprocess, spec.postprocess
    print(f"model       {spec.path}")
    print(f"sha256      {spec.sha256[:16]}...")
    print(f"task        {spec.task} (decoder: {post.decoder})")
    print(
        f"input       {spec.input_name} {spec.input_shape} {pre.layout}"
        + (" (dynamic size)" if spec.dynamic_size else "")
    )
    for out in spec.outputs:
        print(f"output      {out['name']} {out['shape']}")
    size = f"short side {pre.short_side}" if pre.short_side else f"{pre.size[0]}x{pre.size[1]}"
    print(
        f"preprocess  {pre.resize} to {size}, {pre.color}, x*{pre.scale:.6g}, "
        f"mean {pre.mean}, std {pre.std}"
        + (f", pad {pre.pad_value:g}" if pre.resize == "letterbox" else "")
    )
    more = " ..." if len(spec.labels) > 6 else ""
    if spec.labels:
        print(f"labels      {len(spec.labels)}: {' | '.join(spec.labels[:6])}{more}")
    else:
        print("labels      none: classes show as numbers (name them with --class-names FILE)")
    for note in spec.notes:
        print(f"note        {note}")
    for problem in spec.problems:
        print(f"warning     {problem}")


def print_search(found: SearchResult) -> None:
    """The evidence table, the choice marked, and the alarm when even the choice looks misfed."""
    labelled = f", {found.labelled} labelled" if found.labelled else ", no labels"
    what = "a detector" if found.task == "detection" else f"{found.classes} classes"
    print(f"\npreprocessing tried on {found.images} images{labelled} ({what})")
    heads, rows = evidence_table(found)
    print(table(heads, rows))
    for note in found.notes:
        print(f"note        {note}")
    choice = found.choice
    print(f"found       {choice.candidate.name}")
    if choice.alarm:
        print(f"warning     {choice.alarm}")
