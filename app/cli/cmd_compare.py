"""`int8-studio compare`: two variants on the same images or video, frame by frame: what one
finds that the other misses, labels differently, places or scores differently (a table and
JSON), and side-by-side annotated images of the frames where they disagree."""

from __future__ import annotations

import argparse
import math
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2

from app.backends.factory import decode_threads_for, runner_for_pipeline
from app.backends.registry import BACKENDS
from app.cli.arguments import (
    add_allow_stale,
    add_json,
    add_model,
    add_workspace,
    layout_note_of,
    positive_int,
)
from app.cli.output import run_notes, safe_name, save_json, table
from app.core.atomic import atomic_path
from app.core.errors import ModelRefused, UserError
from app.core.eval.comparison import MATCH_IOU, Comparison, FrameDiff
from app.core.frames.imageio import ImageReadError
from app.core.frames.pipeline import FramePipeline, FrameResult
from app.core.frames.side_by_side import side_by_side
from app.core.frames.sources import Frame, FrameSource
from app.core.frames.stages import run_stages
from app.core.model.inspection import inspect_model
from app.core.model.spec import ModelSpec
from app.core.model.staleness import refuse_stale
from app.core.model.workspace import Workspace

TABLE_ROWS = 20  # disagreeing frames listed on the terminal (all of them are in the JSON)


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "compare", help="two variants frame by frame: disagreements as a table, JSON and images"
    )
    add_model(p, required=False)
    add_workspace(p, required=False)
    p.add_argument(
        "--variants", default="fp32,int8", help="the two variants, A,B (default fp32,int8)"
    )
    p.add_argument(
        "--backends",
        default="ort-cpu",
        help=f"backend of A,B, or one for both (default ort-cpu; any of {', '.join(BACKENDS)})",
    )
    p.add_argument(
        "--source", action="append", required=True, help="image, folder or video (repeatable)"
    )
    p.add_argument(
        "--frames", "--max-frames", dest="frames", type=positive_int,
        help="stop each source after N frames",
    )  # fmt: skip
    p.add_argument("--output", help="folder for side-by-side images of the disagreeing frames")
    p.add_argument("--max-images", type=int, default=100, help="at most this many images (100)")
    add_allow_stale(p)
    add_json(p, "every frame's record and the summary")
    p.add_argument("--conf", type=float, help="detection score threshold (default from the spec)")
    p.add_argument(
        "--match-iou",
        type=float,
        default=MATCH_IOU,
        help=f"same-class boxes overlapping this much are the same object (default {MATCH_IOU})",
    )
    p.set_defaults(func=run)


def parse_pair(text: str, what: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    """`a,b` (or one name for both sides, where `allowed` is given) as two names."""
    names = [v.strip() for v in (text or "").split(",") if v.strip()]
    if allowed is not None and len(names) == 1:
        names *= 2
    if len(names) != 2:
        raise UserError(f"--{what} takes two names, A,B (got {text!r})")
    for name in names:
        if allowed is not None and name not in allowed:
            raise UserError(f"--{what}: unknown backend {name!r}; choose from {', '.join(allowed)}")
    return names


def validate(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Every argument checked before any model is opened."""
    if not args.model and not args.workspace:
        raise UserError("give --model (an .onnx file) or --workspace (made by `calibrate`)")
    variants = parse_pair(args.variants, "variants")
    backends = parse_pair(args.backends, "backends", BACKENDS)
    if args.max_images < 0:
        raise UserError(f"--max-images must be 0 or more (got {args.max_images})")
    if not (0.0 < args.match_iou <= 1.0) or math.isnan(args.match_iou):
        raise UserError(f"--match-iou must be in (0, 1] (got {args.match_iou})")
    if args.conf is not None and not (0.0 <= args.conf <= 1.0):
        raise UserError(f"--conf must be in [0, 1] (got {args.conf})")
    if args.output and Path(args.output).exists() and not Path(args.output).is_dir():
        raise UserError(f"--output {args.output} is a file; name a folder for the images")
    if args.json_out and Path(args.json_out).is_dir():
        raise UserError(f"--json {args.json_out} is a folder; name a file, e.g. compare.json")
    return variants, backends


def resolve(
    args: argparse.Namespace, variants: list[str], backends: list[str] | None = None
) -> tuple[ModelSpec, list[str]]:
    """The model spec and the ONNX file of each variant (fp32 is the model itself); a note for a
    variant that runs on a backend its layout was not made for (`targets.layout_note`)."""
    if args.model:
        spec = inspect_model(args.model)
        needs_ws = any(v != "fp32" for v in variants)
        ws = Workspace.for_model(spec, args.workspace) if needs_ws else None
    else:
        ws = Workspace.open(args.workspace)
        spec = ws.spec()
    if ws is not None:
        for warning in refuse_stale(ws, variants, allow=args.allow_stale):
            print(f"warning: {warning}", file=sys.stderr)
    paths = [spec.path if v == "fp32" else str(ws.require_variant(v)) for v in variants]
    for variant, backend in zip(variants, backends or [], strict=False):
        if note := layout_note_of(ws, variant, backend):
            print(f"note: {note}", file=sys.stderr)
    return spec, paths


class _Images:
    """Side-by-side images of disagreeing frames, written atomically under unique names."""

    def __init__(self, out_dir: Path | None, limit: int, titles: tuple[str, str]) -> None:
        self.out_dir = out_dir
        self.limit = limit
        self.titles = titles
        self.written: list[str] = []

    def write(self, frame: Frame, pipes, results, diff: FrameDiff) -> str | None:
        if self.out_dir is None or len(self.written) >= self.limit:
            return None
        left = pipes[0].draw(frame.image.copy(), results[0], highlight=diff.highlight_a)
        right = pipes[1].draw(frame.image.copy(), results[1], highlight=diff.highlight_b)
        masks = f", mask differs {diff.mask_differs}" if diff.mask_differs else ""
        caption = (
            f"{Path(frame.source).name} frame {frame.index}: missed by B {diff.missed}, only in B "
            f"{diff.extra}, other class {diff.other_class}{masks} (thick boxes: no partner"
            f"{' or another mask' if masks else ''})"
        )
        if results[0].top is not None:  # a classifier: no boxes, one top class each
            caption = f"{Path(frame.source).name} frame {frame.index}: the top-1 class differs"
        image = side_by_side(left, right, self.titles, caption)
        stem = f"{safe_name(Path(frame.source).stem)}_{frame.index:06d}"
        target = self.out_dir / f"{stem}.png"
        n = 1
        while target.exists() and n < 10000:
            target = self.out_dir / f"{stem}_{n}.png"
            n += 1
        # PNG: lossless, so a box edge one pixel off on one side is still seen as such
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise UserError(f"{target}: the image could not be encoded")
        with atomic_path(target) as tmp:
            tmp.write_bytes(data.tobytes())
        self.written.append(str(target))
        return str(target)


def run(args: argparse.Namespace) -> int:
    variants, backends = validate(args)
    spec, paths = resolve(args, variants, backends)
    out_dir = Path(args.output) if args.output else None
    made_out_dir = bool(out_dir) and not out_dir.exists()
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    comparison = Comparison(spec, iou=args.match_iou)
    titles = (f"A: {variants[0]} ({backends[0]})", f"B: {variants[1]} ({backends[1]})")
    images = _Images(out_dir, args.max_images, titles)
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    runners_info: list[dict[str, Any]] = []
    with ExitStack() as stack:
        pipes = []
        for name, path, backend in zip(variants, paths, backends):
            runner, fused = runner_for_pipeline(backend, path, spec)
            stack.enter_context(runner)
            for line in run_notes(runner.describe(), name):
                print(line, file=sys.stderr)
            pipe = FramePipeline(spec, runner, fused=fused)
            pipe.warm_up()
            if args.conf is not None:
                pipe.conf = args.conf
            pipes.append(pipe)
            runners_info.append(dict(runner.describe(), variant=name, fused_io=fused))

        def infer(frame: Frame) -> tuple[Frame, list[FrameResult]]:
            return frame, [pipe.process(frame.image) for pipe in pipes]

        def finish(item: tuple[Frame, list[FrameResult]]) -> None:
            frame, results = item
            diff = comparison.add(frame.source, frame.index, results[0], results[1])
            record = diff.to_json()
            if diff.disagrees:
                record["image"] = images.write(frame, pipes, results, diff)
            records.append(record)

        decode = decode_threads_for(backends[0])
        for source in args.source:
            try:
                src = FrameSource(source, max_frames=args.frames, decode_threads=decode)
                if src.kind == "camera":
                    raise UserError(f"{source}: compare reads files (images, folders, videos)")
                run_stages(src, infer, finish)  # decode, both variants, compare: three threads
            except ModelRefused:
                raise  # a variant the backend will not run: not a bad source to skip
            except (UserError, ImageReadError) as exc:
                skipped.append({"source": source, "reason": str(exc).removeprefix(f"{source}: ")})
                continue
            skipped += [{"source": s.source, "reason": s.reason} for s in src.skipped]
    report = {
        "model": spec.path,
        "variants": {"A": variants[0], "B": variants[1]},
        "backends": {"A": backends[0], "B": backends[1]},
        "runners": runners_info,
        "summary": comparison.summary(),
        "frames": records,
        "images": images.written,
        "skipped": skipped,
    }
    if not records:  # each source's reason, then one line: no summary of nothing
        for sk in skipped:
            print(f"skipped: {sk['source']}: {sk['reason']}")
        if made_out_dir and out_dir is not None and not any(out_dir.iterdir()):
            out_dir.rmdir()  # made for this run, and nothing went into it
        first = f" (first: {skipped[0]['source']}: {skipped[0]['reason']})" if skipped else ""
        raise UserError(f"no frame could be read from any --source{first}; nothing was compared")
    print_report(report)
    save_json(args.json_out, report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    s = report["summary"]
    a, b = report["variants"]["A"], report["variants"]["B"]
    print(
        f"{a} vs {b}: {s['frames']} frame(s), {s['disagreeing_frames']} disagree; agreement "
        f"{s['agreement'] * 100:.1f}% (matched {s['matched']}, missed by {b} {s['missed']}, "
        f"extra in {b} {s['extra']}, other class {s['other_class']})"
    )
    if s["mean_iou"] is not None:
        print(
            f"matched boxes: IoU mean {s['mean_iou']:.3f} (min {s['min_iou']:.3f}); score "
            f"difference mean {s['mean_score_diff']:.3f} (max {s['max_score_diff']:.3f})"
        )
    if s.get("mask_pairs"):
        print(
            f"instance masks of matched boxes: IoU mean {s['mean_mask_iou']:.3f} (min "
            f"{s['min_mask_iou']:.3f}); {s['mask_iou_below_0_9']} of {s['mask_pairs']} under 0.9, "
            f"{s['mask_differs']} under {s['mask_differs_iou']} (counted as disagreeing)"
        )
    masks = bool(s.get("mask_pairs"))  # a column of its own for segmentation models only
    rows = [
        (
            Path(r["source"]).name,
            r["frame"],
            r["boxes_a"],
            r["boxes_b"],
            r["missed"],
            r["extra"],
            r["other_class"],
            *([r["mask_differs"]] if masks else []),
            "" if r["mean_iou"] is None else f"{r['mean_iou']:.3f}",
            "" if r["max_score_diff"] is None else f"{r['max_score_diff']:.3f}",
        )
        for r in report["frames"]
        if r["missed"] or r["extra"] or r["other_class"] or r["mask_differs"]
    ]
    if rows:
        headers = ["source", "frame", f"A {a}", f"B {b}", "missed", "extra", "other class"]
        headers += ["mask differs"] if masks else []
        print(table([*headers, "IoU", "max dscore"], rows[:TABLE_ROWS]))
        if len(rows) > TABLE_ROWS:
            print(f"... and {len(rows) - TABLE_ROWS} more disagreeing frame(s) in the JSON")
    if report["images"]:
        print(
            f"{len(report['images'])} side-by-side image(s) in {Path(report['images'][0]).parent}"
        )
    for sk in report["skipped"]:
        print(f"skipped: {sk['source']}: {sk['reason']}")
