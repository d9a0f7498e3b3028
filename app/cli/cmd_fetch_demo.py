"""`int8-studio fetch-demo`: download the YOLOX-Nano COCO demo model once, verified by SHA-256."""

from __future__ import annotations

import argparse
import sys

from app.cli.output import ProgressBar
from app.core import defaults
from app.core.errors import Cancelled, UserError
from app.core.model.demo import DEMO_URL, NO_NETWORK_HINT, URL_ENV, fetch_demo_model

# What a CLI user can do instead (core's hint names the GUI's File > Open first).
CLI_HINT = (
    "use a model of your own with --model PATH (e.g. int8-studio inspect --model my.onnx), or "
    f"give --url (or ${URL_ENV}) a mirror or a file:// copy"
)


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "fetch-demo",
        help="download the YOLOX-Nano COCO demo model (verified) and print where it is",
        description=f"Download {DEMO_URL} once into the user data folder, check its size and "
        "SHA-256, and write its COCO labels beside it. A verified copy already there is reused.",
    )
    p.add_argument("--url", help=f"download from this URL or mirror instead (also ${URL_ENV})")
    p.add_argument(
        "--dest", help="folder to keep the model in (default: <user data>/demo/yolox-nano-coco)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=defaults.DOWNLOAD_TIMEOUT_S,
        help="network timeout in seconds",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bar = ProgressBar("yolox_nano.onnx", plain=False)  # seconds of download: no log lines
    try:
        demo = fetch_demo_model(dest=args.dest, url=args.url, progress=bar, timeout=args.timeout)
    except UserError as exc:
        raise UserError(str(exc).replace(NO_NETWORK_HINT, CLI_HINT)) from exc
    how = f"downloaded from {demo.url}" if demo.downloaded else "already downloaded"
    print(f"{how}; size and SHA-256 verified", file=sys.stderr)
    # stdout carries only the path, so scripts can do MODEL=$(int8-studio fetch-demo).
    print(demo.path)
    print(f"labels: {demo.colormap}", file=sys.stderr)
    print(f"try:    int8-studio gui --model {demo.path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `fetch-demo` on its own (`python -m app.cli.cmd_fetch_demo`), with the CLI's messages."""
    parser = argparse.ArgumentParser(prog="int8-studio")
    register(parser.add_subparsers())
    args = parser.parse_args(["fetch-demo", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except UserError as exc:
        print(f"int8-studio: error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("int8-studio: cancelled; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
