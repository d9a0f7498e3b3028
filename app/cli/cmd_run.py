"""`int8-studio run`: run a model on images, folders, videos or a camera; annotate and report."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import cv2

from app.backends.factory import make_runner
from app.backends.registry import BACKENDS
from app.cli.cmd_inspect import _size
from app.cli.output import save_json, table
from app.core.atomic import atomic_path
from app.core.errors import UserError
from app.core.imageio import ImageReadError
from app.core.modelspec import inspect_model
from app.core.pipeline import FramePipeline
from app.core.sources import FrameSource


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("run", help="run a model on images, a folder, a video or a camera")
    p.add_argument("--model", required=True, help=".onnx file or checkpoint folder")
    p.add_argument(
        "--source",
        action="append",
        required=True,
        help="image, folder, video file or camera index (repeatable)",
    )
    p.add_argument("--output", help="folder for annotated images and videos")
    p.add_argument("--json", dest="json_out", help="write results and timings as JSON")
    p.add_argument("--max-frames", type=int, help="stop each source after N frames")
    p.add_argument("--conf", type=float, help="detection score threshold (default from the spec)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold")
    p.add_argument("--topk", type=int, help="classifier: how many labels")
    p.add_argument("--backend", default="ort-cpu", choices=BACKENDS)
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse to run if the backend falls back to another provider",
    )
    p.add_argument("--size", type=_size, help="input size HxW for dynamic-size models")
    p.set_defaults(func=run)


def safe_name(text: str) -> str:
    """A file name that cannot leave the output folder (no separators, no dot-dot)."""
    name = re.sub(r"[^\w.\-]+", "_", text, flags=re.UNICODE).strip("._") or "frame"
    return name[:150]


def run(args: argparse.Namespace) -> int:
    spec = inspect_model(args.model, size=args.size)
    if args.topk:
        spec.postprocess.topk = args.topk
    out_dir = Path(args.output) if args.output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with make_runner(args.backend, spec.path, strict=args.strict) as runner:
        if runner.fallback_note:
            print(f"warning: {runner.fallback_note}", file=sys.stderr)
        pipe = FramePipeline(spec, runner)
        if args.conf is not None:
            pipe.conf = args.conf
        if args.iou is not None:
            pipe.iou = args.iou
        for source in args.source:
            try:
                src = FrameSource(source, max_frames=args.max_frames)
            except UserError as exc:
                skipped.append({"source": source, "reason": str(exc)})
                continue
            try:
                _run_source(src, pipe, spec, out_dir, results)
            except (UserError, ImageReadError) as exc:
                skipped.append({"source": source, "reason": str(exc)})
            skipped += [{"source": s.source, "reason": s.reason} for s in src.skipped]
        info = runner.describe()
    timing = {k: {p: v[p] for p in ("p50", "p90", "p99")} for k, v in pipe.timer.summary().items()}
    report = {
        "backend": info["backend"],
        "provider": info["provider"],
        "fallback": info["fallback"],
        "results": results,
        "skipped": skipped,
        "timing": timing,
    }
    save_json(args.json_out, report)
    _print_summary(report)
    return 0


def _run_source(src: FrameSource, pipe: FramePipeline, spec, out_dir: Path | None, results) -> None:
    writer = None
    video_tmp = None
    video_ctx = None
    try:
        for frame in src:
            res = pipe.process(frame.image)
            results.append({"source": frame.source, "frame": frame.index, **res.to_json(spec)})
            if out_dir is None:
                continue
            annotated = pipe.draw(frame.image, res)
            if src.kind in ("video", "camera"):
                if writer is None:
                    name = safe_name(Path(frame.source).stem) + "_annotated.mp4"
                    video_ctx = atomic_path(out_dir / name)
                    video_tmp = video_ctx.__enter__()
                    h, w = annotated.shape[:2]
                    fps = src.fps if src.fps > 0 else 25.0
                    writer = cv2.VideoWriter(
                        str(video_tmp.with_suffix(".mp4")),
                        cv2.VideoWriter_fourcc(*"mp4v"),
                        fps,
                        (w, h),
                    )
                writer.write(annotated)
            else:
                stem = safe_name(Path(frame.source).stem)
                target = out_dir / f"{stem}.jpg"
                n = 1
                while target.exists() and n < 10000:
                    target = out_dir / f"{stem}_{n}.jpg"
                    n += 1
                ok, data = cv2.imencode(".jpg", annotated)
                if ok:
                    with atomic_path(target) as tmp:
                        tmp.write_bytes(data.tobytes())
    except BaseException as exc:
        if writer is not None:
            writer.release()
            video_ctx.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if writer is not None:
        writer.release()
        video_tmp.with_suffix(".mp4").replace(video_tmp)
        video_ctx.__exit__(None, None, None)


def _print_summary(report: dict[str, Any]) -> None:
    frames = len(report["results"])
    print(f"{frames} frame(s) on {report['backend']} ({report['provider']})")
    if report["fallback"]:
        print(f"warning: {report['fallback']}")
    rows = [
        (k.removesuffix("_ms"), v["p50"], v["p90"], v["p99"]) for k, v in report["timing"].items()
    ]
    if rows:
        print(table(["stage (ms)", "p50", "p90", "p99"], rows))
    for s in report["skipped"]:
        print(f"skipped: {s['source']}: {s['reason']}")
