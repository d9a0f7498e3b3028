"""`int8-studio backends`: which backends this machine can run, and why not."""

from __future__ import annotations

import argparse

from app.backends.registry import backend_statuses
from app.cli.arguments import add_json
from app.cli.output import save_json, table


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("backends", help="list the backends this machine can run, and why not")
    add_json(p, "the list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    statuses = backend_statuses()
    rows = [(s.name, "yes" if s.available else "no", s.reason or "ready") for s in statuses]
    print(table(["backend", "available", "why / details"], rows))
    save_json(args.json_out, [s.__dict__ for s in statuses])
    return 0
