"""`int8-studio build`: TensorRT engines of a workspace's variants, reused when still valid.

Arguments are declared here plainly (the shared argparse helpers were not there yet).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.backends.tensorrt.deps import import_tensorrt, parse_trt_major
from app.backends.tensorrt.engines import (
    INT8_SOURCES,
    VARIANTS,
    EngineOptions,
    calibration_cache_path,
    plan_job,
)
from app.backends.tensorrt.settings import CALIBRATORS, ProfileShapes
from app.backends.tensorrt.trtexec import trtexec_command
from app.backends.tensorrt.workspace_engines import build_engines, build_with_provider_engines
from app.cli.arguments import add_allow_stale, add_json, add_variants, add_workspace
from app.cli.output import ProgressBar, save_json, table
from app.core.errors import CancelToken, UserError
from app.core.model.staleness import refuse_stale
from app.core.model.workspace import Workspace


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("build", help="build TensorRT engines of the workspace's variants")
    add_workspace(p)
    add_variants(p)  # one --variants for every command (default: core's fp32, fp16, int8)
    p.add_argument(
        "--engine",
        choices=("tensorrt", "ort-tensorrt"),
        default="tensorrt",
        help="native TensorRT, or ONNX Runtime's TensorRT provider and its cache",
    )
    p.add_argument(
        "--shapes",
        action="append",
        default=[],
        metavar="NAME:MIN,OPT,MAX",
        help="profile of a dynamic input, each shape like 1x3x416x416 (repeatable)",
    )
    p.add_argument(
        "--workspace-size",
        type=int,
        default=1024,
        metavar="MB",
        help="builder workspace memory pool in MiB (default 1024)",
    )
    p.add_argument(
        "--version-compatible",
        action="store_true",
        help="engine loads on later TensorRT releases of the same major",
    )
    p.add_argument("--timing-cache", metavar="F", help="TensorRT timing cache file (read, updated)")
    p.add_argument(
        "--int8-source",
        choices=INT8_SOURCES,
        default="auto",
        help="INT8 from the Q/DQ graph or (TensorRT 10) a calibrator; auto: Q/DQ "
        "when the workspace has that graph",
    )
    p.add_argument("--calibrator", choices=CALIBRATORS, default="entropy2")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimisation level 0..5")
    p.add_argument(
        "--print-trtexec",
        action="store_true",
        help="print the equivalent trtexec command lines and exit (no TensorRT needed)",
    )
    p.add_argument(
        "--trt-major",
        type=int,
        choices=(10, 11),
        help="TensorRT generation for --print-trtexec (default: the installed one, else 10)",
    )
    add_allow_stale(p)
    add_json(p, "the engines and their records")
    p.set_defaults(func=run)


def parse_shapes(items: list[str]) -> dict[str, ProfileShapes]:
    """`NAME:MIN,OPT,MAX` (or the three shapes' dims in one `x` list) -> profiles."""
    out: dict[str, ProfileShapes] = {}
    for item in items:
        name, sep, rest = item.partition(":")
        try:
            if not sep or not name:
                raise ValueError("no NAME:")
            if "," in rest:
                parts = [tuple(int(d) for d in s.split("x")) for s in rest.split(",")]
            else:
                dims = [int(d) for d in rest.split("x")]
                if len(dims) % 3:
                    raise ValueError("not three shapes")
                k = len(dims) // 3
                parts = [tuple(dims[i * k : (i + 1) * k]) for i in range(3)]
            if len(parts) != 3:
                raise ValueError("not three shapes")
        except ValueError as exc:
            raise UserError(
                f"--shapes {item!r}: write NAME:MIN,OPT,MAX with shapes like 1x3x416x416"
            ) from exc
        out[name] = (parts[0], parts[1], parts[2])
    return out


def _options(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(
        workspace_mb=args.workspace_size,
        profiles=parse_shapes(args.shapes),
        version_compatible=args.version_compatible,
        timing_cache=args.timing_cache,
        int8_source=args.int8_source,
        calibrator=args.calibrator,
        opt_level=args.opt_level,
    )


def _variants(names: list[str]) -> list[str]:
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise UserError(f"--variants {','.join(names)!r}: choose from {', '.join(VARIANTS)}")
    return list(dict.fromkeys(names))


@contextmanager
def ctrl_c_cancels(token: CancelToken) -> Iterator[None]:
    """The first Ctrl-C asks TensorRT to stop at its next step (the main thread is inside the
    builder, where KeyboardInterrupt would wait for the whole build); a second one interrupts."""

    def on_sigint(_sig: int, _frame: Any) -> None:
        token.cancel()
        print("\ncancelling at TensorRT's next step (Ctrl-C again to force)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _installed_major(trt: Any) -> int:
    """The installed TensorRT's major; 10 where none is (the generation ORT's provider needs)."""
    try:
        module = trt if trt is not None else import_tensorrt()
        return parse_trt_major(module.__version__)
    except (UserError, AttributeError):
        return 10


def print_trtexec(ws: Workspace, variants: list[str], options: EngineOptions, major: int) -> None:
    for variant in variants:
        job = plan_job(ws, variant, options, major)
        out = ws.root / "engines" / f"{variant}-trtexec.engine"
        cache = calibration_cache_path(ws, job, str(major))
        print(f"# {variant}: {job.graph_label}, TensorRT {major} ({job.route})")
        print(trtexec_command(job.graph, out, job.settings, major, calibration_cache=cache))


def execute(args: argparse.Namespace, *, trt: Any = None, cudart: Any = None) -> int:
    """The command; `trt` / `cudart` are the modules (tests pass the recording stand-ins)."""
    ws = Workspace.open(args.workspace)
    variants, options = _variants(args.variants), _options(args)
    for warning in refuse_stale(ws, variants, allow=args.allow_stale):
        print(f"warning: {warning}", file=sys.stderr)
    if args.print_trtexec:
        major = args.trt_major or _installed_major(trt)
        print_trtexec(ws, variants, options, major)
        return 0
    if args.engine == "ort-tensorrt":
        return _with_provider(ws, variants, options, args)
    token = CancelToken()
    with ctrl_c_cancels(token):
        built = build_engines(
            ws,
            variants,
            options,
            cancel=token,
            progress_for=lambda variant: ProgressBar(f"building {variant}"),
            trt=trt,
            cudart=cudart,
        )
    version, gpu, results = built["trt_version"], built["gpu"], built["engines"]
    print(f"TensorRT {version} on {gpu} (sm {built['capability']})")
    rows = [
        (r["variant"], r["route"], r["state"], f"{r['bytes'] / 1e6:.2f} MB", r["engine"])
        for r in results
    ]
    print(table(["variant", "route", "engine", "size", "file"], rows))
    for r in results:
        if r["reason"]:
            print(f"{r['variant']}: rebuilt because {r['reason']}", file=sys.stderr)
    save_json(
        args.json_out,
        {"workspace": str(ws.root), "trt_version": version, "gpu": gpu, "engines": results},
    )
    return 0


def _with_provider(
    ws: Workspace, variants: list[str], options: EngineOptions, args: argparse.Namespace
) -> int:
    results = build_with_provider_engines(ws, variants, options)["engines"]
    rows = [(r["variant"], r["route"], f"{r['seconds']:.1f} s", r["engine"]) for r in results]
    print(table(["variant", "route", "session", "engine cache"], rows))
    save_json(args.json_out, {"workspace": str(ws.root), "engines": results})
    return 0


def run(args: argparse.Namespace) -> int:
    return execute(args)
