"""One frame through the model: preprocess -> infer -> postprocess (-> draw), timed per stage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from app.core.frames.drawing import draw_detections, draw_topk
from app.core.frames.postprocess import (
    Detections,
    TopK,
    class_probabilities,
    postprocess_detections,
    topk,
)
from app.core.frames.preprocess import Preprocessor
from app.core.model.spec import ModelSpec
from app.core.timing import StageTimer


class InferFn(Protocol):
    def infer(self, feed: np.ndarray) -> list[np.ndarray]: ...


@dataclass
class FrameResult:
    detections: Detections | None = None
    top: TopK | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self, spec: ModelSpec) -> dict[str, Any]:
        if self.detections is not None:
            d = self.detections
            found = [
                {
                    "label": spec.label(int(d.class_ids[i])),
                    "class_id": int(d.class_ids[i]),
                    "score": round(float(d.scores[i]), 4),
                    "box": [round(float(v), 1) for v in d.boxes[i]],
                }
                for i in range(len(d))
            ]
            if d.masks is not None:  # a segmentation model's: area and outline, source pixels
                for i, item in enumerate(found):
                    area = int(d.masks.masks[i].sum())
                    item["mask"] = {"area": area, "polygon": d.masks.polygon(i)}
            return {"detections": found}
        assert self.top is not None
        return {
            "topk": [
                {"label": spec.label(int(c)), "class_id": int(c), "score": round(float(s), 4)}
                for c, s in zip(self.top.class_ids, self.top.scores)
            ]
        }


@dataclass
class Prepared:
    """A preprocessed frame waiting for inference."""

    tensor: np.ndarray
    geo: Any
    preprocess_ms: float


class FramePipeline:
    """Runs frames through a spec's preprocessing, a runner and the spec's postprocessing.

    `conf`, `iou` and `k` may be changed between frames (GUI sliders apply at once).
    """

    def __init__(
        self,
        spec: ModelSpec,
        runner: InferFn,
        timer: StageTimer | None = None,
        fused: bool = False,
    ) -> None:
        """`fused`: the runner's graph came from `graph_fusion.fuse_io` (uint8 frames in)."""
        self.spec = spec
        self.runner = runner
        self.fused = fused
        self.pre = Preprocessor(spec.preprocess, fused=fused)
        self.timer = timer or StageTimer()
        self.conf = spec.postprocess.conf
        self.iou = spec.postprocess.iou
        self.k = spec.postprocess.topk
        self.masks = True  # a segmentation model's instance masks, to draw (evaluate: boxes)

    def warm_up(self) -> bool:
        """Run the model once on a blank frame of its input size, timing nothing: the first
        inference pays for session set-up (on CUDA: cuDNN's algorithm search and the CUDA graph
        capture, seconds), which would otherwise be the first frame's latency in charts, p99s
        and reports. Only for fixed input sizes (False otherwise: the first frame warms up).
        It runs twice: a runner that compiles a request of its own for a shape that comes again
        (OpenVINO on a model with open input dims: 0.2-0.7 s) does so here, not at the second
        frame of a live view."""
        pre = self.spec.preprocess
        if pre.short_side or not pre.size or len(pre.size) != 2:
            return False
        tensor, _ = self.pre(np.zeros((int(pre.size[0]), int(pre.size[1]), 3), np.uint8))
        try:
            for _ in range(2):
                self.runner.infer(tensor)
        except Exception:  # the first real frame raises it again, where the caller reports
            return False  # inference errors (per source in `run`, inline in the GUI)
        return True

    def infer_raw(self, image: np.ndarray) -> tuple[list[np.ndarray], Any, dict[str, float]]:
        return self.infer_prepared(self.prepare(image))

    def prepare(self, image: np.ndarray, own: bool = False) -> Prepared:
        """Preprocess one frame (timed). `own`: the tensor is a new array, safe to hand to
        another thread while this one prepares the next frames."""
        t0 = time.perf_counter()
        tensor, geo = self.pre(image, own=own)
        return Prepared(tensor, geo, (time.perf_counter() - t0) * 1e3)

    def infer_prepared(self, prep: Prepared) -> tuple[list[np.ndarray], Any, dict[str, float]]:
        t0 = time.perf_counter()
        outputs = self.runner.infer(prep.tensor)
        ms = (time.perf_counter() - t0) * 1e3
        return outputs, prep.geo, {"preprocess_ms": prep.preprocess_ms, "infer_ms": ms}

    def decode(self, outputs: list[np.ndarray], geo: Any) -> FrameResult:
        if self.spec.task == "detection":
            return FrameResult(
                detections=postprocess_detections(
                    outputs, self.spec, geo, self.conf, self.iou, masks=self.masks
                )
            )
        probs = class_probabilities(outputs, self.spec)[0]
        return FrameResult(top=topk(probs, self.k))

    def finish(self, outputs: list[np.ndarray], geo: Any, times: dict[str, float]) -> FrameResult:
        """Postprocess (timed) what `infer_prepared` returned; the frame's stage times become
        its `timings_ms` and go to `self.timer`."""
        t0 = time.perf_counter()
        result = self.decode(outputs, geo)
        times["postprocess_ms"] = (time.perf_counter() - t0) * 1e3
        result.timings_ms = times
        for name, ms in times.items():
            self.timer.add(name, ms)
        return result

    def process(self, image: np.ndarray) -> FrameResult:
        """Preprocess, infer and postprocess one BGR frame; stage times go to `self.timer`."""
        return self.finish(*self.infer_raw(image))

    def draw(self, image: np.ndarray, result: FrameResult, highlight: np.ndarray | None = None):
        """Draw `result` onto `image` in place (timed as the draw stage)."""
        t0 = time.perf_counter()
        if result.detections is not None:
            draw_detections(image, result.detections, self.spec, highlight)
        elif result.top is not None:
            draw_topk(image, result.top, self.spec)
        ms = (time.perf_counter() - t0) * 1e3
        result.timings_ms["draw_ms"] = ms
        self.timer.add("draw_ms", ms)
        return image
