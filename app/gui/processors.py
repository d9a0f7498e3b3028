"""What the stream job does with each frame: one variant (live) or two side by side (compare).

Runs on the worker thread: pipeline, drawing and QImage conversion all happen here so the GUI
thread only paints.
"""

from __future__ import annotations

import os
from typing import Any

import cv2
from PySide6.QtGui import QImage

from app.backends.base import Runner
from app.backends.factory import CPU_BACKENDS, decode_threads_for, runner_for_pipeline
from app.core.eval.comparison import Comparison
from app.core.frames.live import PipelineStages
from app.core.frames.pipeline import FramePipeline, Prepared
from app.core.frames.sources import Frame
from app.core.model.spec import ModelSpec
from app.gui.stream import Packet, to_qimage


class LiveProcessor:
    """One variant on one backend; `pipelines[i].conf/iou/k` may change between frames."""

    def __init__(self, spec: ModelSpec, models: list[str], backend: str, names: list[str]) -> None:
        self.spec = spec
        self.models = models
        self.backend = backend
        self.names = names
        self.runners: list[Runner] = []
        self.pipelines: list[FramePipeline] = []
        self.stages: PipelineStages | None = None  # the first pipeline's, as `run` cuts it
        self._thresholds: dict[str, float] = {}
        self._cv_threads: int | None = None  # OpenCV's thread count to restore on close

    def set_thresholds(self, conf: float | None = None, iou: float | None = None) -> None:
        """Apply to every pipeline now; also remembered for pipelines not yet opened."""
        if conf is not None:
            self._thresholds["conf"] = conf
        if iou is not None:
            self._thresholds["iou"] = iou
        for pipe in self.pipelines:
            for key, value in self._thresholds.items():
                setattr(pipe, key, value)

    def threads(self) -> int | None:
        """CPU inference shares the cores between the variants shown; its threads do not
        busy-wait (see `options`), so the GUI thread and the reader still get their turn."""
        if self.backend not in CPU_BACKENDS:
            return None
        cores = os.cpu_count() or 2
        return max(1, cores // len(self.models))

    @property
    def decode_threads(self) -> int | None:
        return decode_threads_for(self.backend)

    def options(self) -> dict[str, Any]:
        return {"spin": False} if self.backend.startswith("ort-") else {}

    def open(self) -> list[dict[str, Any]]:
        if self.backend in CPU_BACKENDS:
            # CPU inference already uses every core and the stream overlaps its stages on
            # threads; OpenCV's own worker pool only adds wake-ups that compete with inference
            # (measured on 2 cores: 4 CPU-ms less per frame, 2-5% more frames per second).
            self._cv_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
        infos = []
        for path, name in zip(self.models, self.names):
            # the same runner the CLI's pipelines get: on GPUs, uint8 frames in and CUDA graphs
            runner, fused = runner_for_pipeline(
                self.backend, path, self.spec, threads=self.threads(), options=self.options()
            )
            self.runners.append(runner.open())
            pipe = FramePipeline(self.spec, runner, fused=fused)
            pipe.warm_up()  # on this worker thread: set-up is not the first frame's latency
            self.pipelines.append(pipe)
            infos.append(dict(runner.describe(), variant=name, fused_io=fused))
        self.stages = PipelineStages(self.pipelines[0])
        self.set_thresholds()
        return infos

    def process(self, frame: Frame, max_size: tuple[int, int]) -> Packet:
        return self.finish(self.infer(self.prepare(frame)), max_size)

    def prepare(self, frame: Frame) -> tuple[Frame, Prepared]:
        """Stage 0, on the reader thread right after decoding: preprocess into a tensor of the
        frame's own (the inference thread may still be reading the previous one)."""
        assert self.stages is not None, "open() first"
        return self.stages.prepare(frame)

    def infer(self, item: tuple[Frame, Prepared]) -> tuple[Frame, Any, Any, dict[str, float]]:
        """Stage 1, on the stream's thread: inference only."""
        assert self.stages is not None, "open() first"
        return self.stages.infer(item)

    def finish(self, state: tuple, max_size: tuple[int, int]) -> Packet:
        """Second stage: decode; the packet draws and converts for display when asked to."""
        assert self.stages is not None, "open() first"
        frame, result = self.stages.finish(state)
        pipe = self.stages.pipe
        extra = {"count": len(result.detections) if result.detections is not None else 0}

        def images() -> list[QImage]:
            return [to_qimage(pipe.draw(frame.image.copy(), result), max_size)]

        return Packet(frame.index, frame.source, [], [result.timings_ms], extra, draw=images)

    def close(self) -> None:
        for runner in self.runners:
            runner.close()
        self.runners.clear()
        if self._cv_threads is not None:
            cv2.setNumThreads(self._cv_threads)
            self._cv_threads = None


class CompareProcessor(LiveProcessor):
    """Two variants on the same frame; boxes one has and the other lacks are highlighted."""

    # both variants and the matching run in one step (no split stages)
    prepare = None  # type: ignore[assignment]
    infer = None  # type: ignore[assignment]
    finish = None  # type: ignore[assignment]

    def __init__(self, spec: ModelSpec, models: list[str], backend: str, names: list[str]) -> None:
        super().__init__(spec, models, backend, names)
        # the same comparison `int8-studio compare` reports (per-frame record, running summary)
        self.comparison = Comparison(spec)

    @property
    def matched(self) -> int:
        return self.comparison.matched

    @property
    def total(self) -> int:
        return self.comparison.total

    @property
    def highlighted(self) -> int:
        """Boxes one side lacks so far (both sides; drawn thick when shown)."""
        return self.comparison.highlighted

    def process(self, frame: Frame, max_size: tuple[int, int]) -> Packet:
        pa, pb = self.pipelines
        ra, rb = pa.process(frame.image), pb.process(frame.image)
        diff = self.comparison.add(frame.source, frame.index, ra, rb)
        extra: dict[str, Any] = {"frame_agreement": diff.score}
        if ra.detections is not None and rb.detections is not None:
            extra.update(only_a=diff.missed, only_b=diff.extra, class_diff=diff.other_class)
        extra["agreement"] = self.comparison.agreement
        extra["mask_iou"] = self.comparison.mask_iou  # segmentation models only
        ha, hb = diff.highlight_a, diff.highlight_b

        def images() -> list[QImage]:
            ia = pa.draw(frame.image.copy(), ra, highlight=ha)
            ib = pb.draw(frame.image.copy(), rb, highlight=hb)
            return [to_qimage(ia, max_size), to_qimage(ib, max_size)]

        timings = [ra.timings_ms, rb.timings_ms]
        return Packet(frame.index, frame.source, [], timings, extra, draw=images)
