"""`int8-studio run`: run a model on images, folders, videos or a camera; annotate and report."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import cv2

from app.backends.factory import decode_threads_for, runner_for_pipeline
from app.cli.arguments import (
    add_allow_stale,
    add_backend,
    add_corrections,
    add_json,
    add_model,
    add_tf32,
    add_workspace,
    folder_to_write,
    positive_int,
    probability,
)
from app.cli.model_spec import variant_to_run
from app.cli.output import run_notes, safe_name, save_json, table
from app.core.atomic import atomic_path
from app.core.errors import ModelRefused, UserError
from app.core.frames.imageio import ImageReadError
from app.core.frames.live import run_live
from app.core.frames.pipeline import FramePipeline
from app.core.frames.sources import FrameSource
from app.core.model.workspace import remove_leftovers


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("run", help="run a model on images, a folder, a video or a camera")
    add_model(p, required=False)
    add_workspace(p, required=False)
    p.add_argument("--variant", default="fp32", help="which variant of the workspace to run")
    add_allow_stale(p)
    p.add_argument(
        "--source",
        action="append",
        required=True,
        help="image, folder, video file or camera index (repeatable)",
    )
    p.add_argument("--output", type=folder_to_write, help="folder for annotated images and videos")
    add_json(p, "results and timings")
    p.add_argument(
        "--max-frames", "--frames", dest="max_frames", type=positive_int,
        help="stop each source after N frames",
    )  # fmt: skip
    p.add_argument(
        "--conf", type=probability, help="detection score threshold (default from the spec)"
    )
    p.add_argument("--iou", type=probability, help="NMS IoU threshold")
    p.add_argument("--topk", type=positive_int, help="classifier: how many labels")
    add_backend(p)
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse to run if the backend falls back to another provider",
    )
    add_corrections(p)
    add_tf32(p)
    p.set_defaults(func=run)


class OutputWriteError(UserError):
    """An output file could not be written; the run stops (exit 2) instead of skipping."""


def _reason(exc: Exception, source: str) -> str:
    """The message without the source path it starts with (the entry names the source)."""
    return str(exc).removeprefix(f"{source}: ")


def run(args: argparse.Namespace) -> int:
    spec, model_path = variant_to_run(args)
    if args.topk:
        spec.postprocess.topk = args.topk
    out_dir = Path(args.output) if args.output else None
    made_out_dir = bool(out_dir) and not out_dir.exists()
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir, only_pid_named=True)  # videos of a killed earlier `run`
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    written: list[dict[str, Any]] = []
    runner, fused = runner_for_pipeline(
        args.backend, model_path, spec, strict=args.strict, options={"tf32": args.tf32}
    )
    with runner:
        for line in run_notes(runner.describe()):
            print(line, file=sys.stderr)
        pipe = FramePipeline(spec, runner, fused=fused)
        pipe.warm_up()  # session set-up is not counted as the first frame's latency
        if args.conf is not None:
            pipe.conf = args.conf
        if args.iou is not None:
            pipe.iou = args.iou
        for source in args.source:
            try:
                src = FrameSource(
                    source,
                    max_frames=args.max_frames,
                    decode_threads=decode_threads_for(args.backend),
                )
            except UserError as exc:
                skipped.append({"source": source, "reason": _reason(exc, source)})
                continue
            try:
                _run_source(src, pipe, spec, out_dir, results, written)
            except (OutputWriteError, ModelRefused):
                raise  # the output the user asked for failed, or the model: not a bad input
            except (UserError, ImageReadError) as exc:
                skipped.append({"source": source, "reason": _reason(exc, source)})
            skipped += [{"source": s.source, "reason": s.reason} for s in src.skipped]
        info = runner.describe()
    timing = {k: {p: v[p] for p in ("p50", "p90", "p99")} for k, v in pipe.timer.summary().items()}
    report = {
        "backend": info["backend"],
        "provider": info["provider"],
        "fallback": info["fallback"],
        "caveat": info["caveat"],
        "fused_io": fused,  # uint8 frames into a copy of the model that normalises itself
        "results": results,
        "written": written,  # the annotated file of each image and video, and any renaming
        "skipped": skipped,
        "timing": timing,
    }
    if not results and skipped:  # each source's reason, then one line: no summary of nothing
        for sk in skipped:
            print(f"skipped: {sk['source']}: {sk['reason']}")
        if made_out_dir and out_dir is not None and not any(out_dir.iterdir()):
            out_dir.rmdir()  # made for this run, and nothing went into it
        raise UserError(
            f"none of the {len(args.source)} source(s) could be run (first: "
            f"{skipped[0]['source']}: {skipped[0]['reason']})"
        )
    save_json(args.json_out, report)
    _print_summary(report)
    return 0


class _Outputs:
    """Writes annotated images (atomically) and one annotated video per video/camera source.

    The video is written under a hidden temporary name (VideoWriter needs the .mp4 suffix) and
    renamed into place only when the source finished cleanly.
    """

    def __init__(self, out_dir: Path | None, src: FrameSource, written: list) -> None:
        self.out_dir = out_dir
        self.src = src
        self.written_files = written  # {"source", "file", "frames" | "renamed_from"} entries
        self.writer: cv2.VideoWriter | None = None
        self.final: Path | None = None
        self.tmp: Path | None = None
        self.written = 0

    def write(self, frame, annotated) -> None:
        if self.out_dir is None:
            return
        if self.src.kind in ("video", "camera"):
            if self.writer is None:
                name = safe_name(Path(frame.source).stem) + "_annotated.mp4"
                self.final = self.out_dir / name
                self.tmp = self.out_dir / f".{name}.{os.getpid()}.part.mp4"
                h, w = annotated.shape[:2]
                fps = self.src.fps if self.src.fps > 0 else 25.0
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, (w, h))
            self.writer.write(annotated)
            self.written += 1
            return
        stem = safe_name(Path(frame.source).stem)
        wanted = target = self.out_dir / f"{stem}.jpg"
        n = 1
        while target.exists() and n < 10000:
            target = self.out_dir / f"{stem}_{n}.jpg"
            n += 1
        ok, data = cv2.imencode(".jpg", annotated)
        if ok:
            with atomic_path(target) as tmp:
                tmp.write_bytes(data.tobytes())
            entry: dict[str, Any] = {"source": frame.source, "file": str(target)}
            if target != wanted:
                entry["renamed_from"] = wanted.name  # another source had that name
            self.written_files.append(entry)

    def close(self, ok: bool) -> None:
        """Keep the video only if the source finished and the file plays back in full."""
        if self.writer is None:
            return
        self.writer.release()
        if ok and self._playable():
            os.replace(self.tmp, self.final)
            self.written_files.append(
                {"source": self.src.spec, "file": str(self.final), "frames": self.written}
            )
            return
        self.tmp.unlink(missing_ok=True)
        if ok:
            raise OutputWriteError(
                f"{self.final}: the annotated video could not be written completely (disk "
                "full?); nothing was kept"
            )

    def _playable(self) -> bool:
        cap = cv2.VideoCapture(str(self.tmp))
        try:
            return cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= self.written
        finally:
            cap.release()


def _run_source(
    src: FrameSource, pipe: FramePipeline, spec, out_dir: Path | None, results, written
) -> None:
    outputs = _Outputs(out_dir, src, written)

    def sink(frame, result, annotated) -> None:
        results.append({"source": frame.source, "frame": frame.index, **result.to_json(spec)})
        outputs.write(frame, annotated)

    ok = False
    try:
        # decode, inference and drawing overlap on three threads; files drop no frames
        run_live(src, pipe, sink, draw=out_dir is not None, drop_stale=False)
        ok = True
    finally:
        outputs.close(ok)


def _print_summary(report: dict[str, Any]) -> None:
    frames = len(report["results"])
    print(f"{frames} frame(s) on {report['backend']} ({report['provider']})")
    for line in run_notes(report):
        print(line)
    rows = [
        (k.removesuffix("_ms"), v["p50"], v["p90"], v["p99"]) for k, v in report["timing"].items()
    ]
    if rows:
        print(table(["stage (ms)", "p50", "p90", "p99"], rows))
    for w in report["written"]:
        if "renamed_from" in w:
            print(f"renamed: {w['source']} -> {w['file']} ({w['renamed_from']} was taken)")
    for s in report["skipped"]:
        print(f"skipped: {s['source']}: {s['reason']}")
