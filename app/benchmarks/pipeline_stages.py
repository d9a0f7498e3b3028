"""Per-stage cost of the app's YOLOX pipeline against the tutorials' way, on the same video frames.

    python -m app.benchmarks.pipeline_stages --model DIR --video FILE [--frames 300] [--json F]

Both pipelines see the same decoded frames and the same raw model outputs; only preprocessing,
postprocessing and drawing differ. The app's side is its one frame pipeline (`FramePipeline`,
the stages `run`, the GUI views and `run_live` use), one stage after another on one thread, so
each stage's own cost is timed with nothing overlapping. Prints p50/p90/p99 per stage and the
ratio of the sums.
"""

from __future__ import annotations

import argparse
import sys
import time

from app.backends.onnxrt import OrtRunner
from app.benchmarks.tutorial_pipeline import (
    tutorial_draw,
    tutorial_postprocess,
    tutorial_preprocess,
)
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.frames.pipeline import FramePipeline
from app.core.frames.sources import FrameSource
from app.core.model.inspection import inspect_model
from app.core.timing import StageTimer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--video", required=True)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    spec = inspect_model(args.model)
    if spec.postprocess.decoder != "yolox_raw":
        print("this benchmark compares the YOLOX raw-grid pipeline; pick a YOLOX model")
        return 2
    size = spec.preprocess.size[0]
    tut = StageTimer()
    frames = [f.image for f in FrameSource(args.video, max_frames=args.frames)]
    with OrtRunner(spec.path) as runner:
        pipe = FramePipeline(spec, runner)  # its timer gets preprocess/infer/postprocess/draw
        for image in frames:
            raw, geo, times = pipe.infer_prepared(pipe.prepare(image))
            result = pipe.finish(raw, geo, times)
            pipe.draw(image.copy(), result)
            t0 = time.perf_counter()
            _, ratio = tutorial_preprocess(image, size)
            tut.add("preprocess", (time.perf_counter() - t0) * 1e3)
            with tut.stage("postprocess"):
                ref = tutorial_postprocess(
                    raw[0], ratio, size, spec.postprocess.conf, spec.postprocess.iou
                )
            with tut.stage("draw"):
                tutorial_draw(image, ref, spec.labels)
    a = {k.removesuffix("_ms"): v for k, v in pipe.timer.summary().items()}
    t = tut.summary()
    rows = []
    for stage in ("preprocess", "postprocess", "draw"):
        rows.append(
            (
                stage,
                a[stage]["p50"],
                a[stage]["p99"],
                t[stage]["p50"],
                t[stage]["p99"],
                round(t[stage]["p50"] / max(a[stage]["p50"], 1e-9), 1),
            )
        )
    app_sum = sum(a[s]["p50"] for s in ("preprocess", "postprocess", "draw"))
    tut_sum = sum(t[s]["p50"] for s in ("preprocess", "postprocess", "draw"))
    rows.append(
        ("pre+post+draw", round(app_sum, 3), "", round(tut_sum, 3), "", round(tut_sum / app_sum, 1))
    )
    rows.append(("infer (model)", a["infer"]["p50"], a["infer"]["p99"], "", "", ""))
    h, w = frames[0].shape[:2]
    print(f"YOLOX pipeline stages on {len(frames)} frames of {w}x{h} (ms)")
    print(table(["stage", "app p50", "app p99", "tutorial p50", "tutorial p99", "speed-up"], rows))
    print(f"app pre+post+draw is {app_sum / a['infer']['p50'] * 100:.1f}% of inference time")
    save_json(
        args.json_out,
        {
            "device": device_info(),
            "frames": len(frames),
            "frame_size": [w, h],
            "app": a,
            "tutorial": t,
            "speedup_p50": round(tut_sum / app_sum, 2),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
