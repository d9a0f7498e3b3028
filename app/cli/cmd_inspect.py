"""`int8-studio inspect`: what a model expects and produces, as text or JSON."""

from __future__ import annotations

import argparse
import json

from app.cli.arguments import add_corrections, add_json, add_model
from app.cli.model_spec import model_spec
from app.cli.output import save_json
from app.core.atomic import write_json
from app.core.model.overrides import spec_fields


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("inspect", help="show a model's inputs, outputs, task and preprocessing")
    add_model(p)
    add_corrections(p)
    p.add_argument("--write-spec", help="write the settable fields as JSON, to edit for --spec")
    add_json(p, stdout=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec, merged, root = model_spec(args)
    if args.write_spec:
        write_json(args.write_spec, spec_fields(spec))
    if args.json_out == "-":
        print(json.dumps(spec.to_dict(), indent=2))
        return 0
    save_json(args.json_out, spec.to_dict())
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
    print(f"labels      {len(spec.labels)}: {', '.join(spec.labels[:6])}{more}")
    for note in spec.notes:
        print(f"note        {note}")
    for problem in spec.problems:
        print(f"warning     {problem}")
    if merged:
        print(f"corrections {', '.join(merged)} ({root or 'this command only; not saved'})")
    if args.write_spec:
        print(f"spec file   {args.write_spec} (edit it, then pass --spec {args.write_spec})")
    return 0
