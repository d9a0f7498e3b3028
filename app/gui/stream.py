"""Frame streaming for the live and compare views: the Qt parts around the core's stages.

`run_stream` plays a source through a processor with `app.core.frames.stages.run_stages` (the
same reader, latest-frame slot, pacing and finisher as `int8-studio run`); what is the GUI's own
lives here: the stream control (play state, display budget, counters), the packets handed to the
view, and the QImage conversion. The reader plays the source at its own rate (video at its fps,
a camera as it delivers) and replaces an unread frame instead of queuing it, so a slow model
shows fresh frames and counts the stale ones as dropped. At most one processed frame waits for
the GUI at a time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.core.errors import CancelToken
from app.core.frames.sources import Frame, FrameSource
from app.core.frames.stages import LiveStats, Playback, run_stages
from app.gui.workers import WORKER_NICE, lower_thread_priority

# Reading and drawing run below the inference thread (WORKER_NICE): they have slack, inference is
# the bottleneck, so on few cores they should fill its idle moments rather than compete with it.
STAGE_NICE = WORKER_NICE + 5


@dataclass
class Packet:
    """One processed frame ready for display."""

    index: int
    source: str
    images: list[QImage]
    timings: list[dict[str, float]]
    extra: dict[str, Any] = field(default_factory=dict)
    # makes `images` (drawing and converting), called only for frames the screen will show
    draw: Any = None
    # set by StreamControl.take_packet: per-variant timings of every frame finished since the
    # previous packet was taken, this one's last (frames not drawn for display included)
    backlog: list[list[dict[str, float]]] = field(default_factory=list)


class Processor(Protocol):
    """Runs frames for a view. A processor may also offer `prepare(frame) -> item` (run on the
    reader thread), `infer(item) -> state` and `finish(state, max_size) -> Packet`: the stream
    then overlaps them on three threads. Packets come without images and with `draw`: the
    stream calls it only for frames the screen will show (see `present`)."""

    def open(self) -> list[dict[str, Any]]: ...
    def process(self, frame: Frame, max_size: tuple[int, int]) -> Packet: ...
    def close(self) -> None: ...


def to_qimage(bgr: np.ndarray, max_size: tuple[int, int] = (0, 0)) -> QImage:
    """BGR uint8 array -> detached QImage, shrunk (never enlarged) to fit `max_size` if given.

    The image is 32-bit RGB (bytes B, G, R, 255: OpenCV's BGRA), the format of Qt's raster
    backing store, so the GUI thread paints it with a plain copy: a BGR888 image made Qt convert
    every pixel while painting (0.72 instead of 0.11 ms per 768x432 paint on this 2-core VM).
    """
    h, w = bgr.shape[:2]
    mw, mh = max_size
    if mw > 0 and mh > 0 and (w > mw or h > mh):
        s = min(mw / w, mh / h)
        # Bilinear down to half size (6x cheaper than INTER_AREA at fractional ratios and looks
        # the same there); area averaging only for bigger shrinks, where bilinear would alias.
        method = cv2.INTER_LINEAR if s >= 0.5 else cv2.INTER_AREA
        bgr = cv2.resize(bgr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=method)
        h, w = bgr.shape[:2]
    # Convert straight into a QImage-owned buffer (wrapping numpy memory in a QImage trips
    # PySide refcounts); 32-bit rows have no padding.
    image = QImage(w, h, QImage.Format.Format_RGB32)
    target = np.frombuffer(image.bits(), np.uint8, count=w * h * 4).reshape(h, w, 4)
    if bgr.ndim == 2:
        cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGRA, dst=target)
    else:
        cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2BGRA, dst=target)
    return image


class StreamControl(QObject):
    """Shared between the GUI and the stream job: play state, the display slot, counters.

    Every frame is processed (inference, postprocessing, timings); only frames the screen can
    show are drawn and converted: `wants_image` says no while the GUI has not yet taken the last
    image, or when images would come faster than the screen refreshes. A fast GPU variant then
    runs at its own rate (hundreds of frames/s) while the view repaints at the screen's rate, as
    a video player does, instead of spending CPU on images no screen would show.
    """

    frame_ready = Signal()
    opened = Signal(list)  # runner descriptions

    def __init__(self, realtime: bool = True, display_hz: float = 60.0) -> None:
        super().__init__()
        self.realtime = realtime
        self.playback = Playback()  # pause, step, refresh: read by the stream's threads
        self.stats = LiveStats()  # the stream's counts, filled while it plays
        self.max_size = (0, 0)
        self.processed = 0
        self.shown = 0
        self.display_dropped = 0
        # Images are rationed like a screen's refreshes: a budget that grows by `display_hz`
        # a second (at most 2 banked) and pays for each image, so a stream slower than the
        # screen draws every frame, jitter or not, and a faster one draws display_hz a second.
        self.display_hz = display_hz
        self._budget = 2.0
        self._budget_at = time.perf_counter()
        self.first_done = self.last_done = 0.0  # when the first and latest frames finished
        self._lock = threading.Lock()
        self._packet: Packet | None = None
        self._timings: list[list[dict[str, float]]] = []  # frames finished since the last take
        self._undrawn: Packet | None = None  # the latest frame, when it was not drawn
        self._last_frame: tuple[str, int] | None = None  # (source, index) last delivered

    @property
    def paused(self) -> bool:
        return self.playback.paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self.playback.paused = value

    @property
    def refresh(self) -> bool:
        return self.playback.refresh

    @refresh.setter
    def refresh(self, value: bool) -> None:
        self.playback.refresh = value

    def step(self) -> None:
        """Let one more frame through while paused."""
        self.playback.step()

    @property
    def dropped(self) -> int:
        """Frames never processed: the model was slower than the source (stale, not queued)."""
        return self.stats.dropped

    @property
    def processed_fps(self) -> float:
        """Frames processed per second, first to latest (the view's throughput)."""
        span = self.last_done - self.first_done
        return (self.processed - 1) / span if self.processed > 1 and span > 0 else 0.0

    def wants_image(self) -> bool:
        """Worker side: whether the frame being finished should be drawn for display (when it
        says yes, the image is paid for)."""
        if self.paused or self.display_hz <= 0:
            return True  # stepping and refreshes are shown one by one
        now = time.perf_counter()
        with self._lock:
            self._budget = min(2.0, self._budget + (now - self._budget_at) * self.display_hz)
            self._budget_at = now
            if self._budget < 1.0 or (self._packet is not None and self._packet.images):
                return False  # no refresh to spare, or the GUI has not taken the last image
            self._budget -= 1.0
            return True

    def deliver(self, packet: Packet) -> None:
        """Worker side: count the frame; keep only the newest image, and signal only when the
        GUI has none waiting. A packet without images (not drawn) only adds its timings."""
        now = time.perf_counter()
        with self._lock:
            # the paused frame run again for new thresholds is shown, not counted again
            repeat = self._last_frame == (packet.source, packet.index) and self.paused
            self._last_frame = (packet.source, packet.index)
            self.processed += 0 if repeat else 1
            self.first_done = self.first_done or now
            self.last_done = now
            self._timings.append(packet.timings)
            self._undrawn = None if packet.images else packet
            if not packet.images:
                self.display_dropped += 1
                return
            waiting = self._packet is not None
            if waiting:
                self.display_dropped += 1
            self._packet = packet
        if not waiting:
            self.frame_ready.emit()

    def show_last(self) -> None:
        """Worker side, when a run ends: if its last frame was not drawn (the screen had just
        been given one), draw it now, so the view ends on the last frame (a folder's last
        image) rather than one a few frames earlier. Not counted as another processed frame."""
        with self._lock:
            packet, self._undrawn = self._undrawn, None
        if packet is None or packet.draw is None:
            return
        packet.images = packet.draw()
        with self._lock:
            waiting = self._packet is not None
            self.display_dropped -= 1  # it is shown after all
            if waiting:
                self.display_dropped += 1
            self._packet = packet
        if not waiting:
            self.frame_ready.emit()

    def take_timings(self) -> list[list[dict[str, float]]]:
        """GUI side: timings of frames finished since the last take (for the end of a run)."""
        with self._lock:
            timings, self._timings = self._timings, []
        return timings

    def take_packet(self) -> Packet | None:
        """GUI side: the newest image packet, or None; its `backlog` holds the timings of every
        frame finished since the last take (drawn or not), oldest first."""
        with self._lock:
            packet, self._packet = self._packet, None
            if packet is not None:
                packet.backlog, self._timings = self._timings, []
        if packet is not None:
            self.shown += 1
        return packet


def present(control: StreamControl, packet: Packet) -> None:
    """Hand a processed frame to the view, drawing it first if the screen has a refresh for it.
    Decided after processing, not before: asked at the start of a 47 ms compare step, the GUI
    had always just been handed the previous image, and every other frame went undrawn."""
    if not packet.images and packet.draw is not None and control.wants_image():
        packet.images = packet.draw()
    control.deliver(packet)


def _splits(processor: Any) -> bool:
    return all(callable(getattr(processor, n, None)) for n in ("prepare", "infer", "finish"))


def _stage_thread() -> None:
    lower_thread_priority(STAGE_NICE)


def run_stream(
    processor: Processor,
    source: str,
    control: StreamControl,
    max_frames: int | None = None,
    *,
    progress: Any = None,
    cancel: CancelToken,
) -> dict[str, Any]:
    """Job body: open the runner(s), play `source` through `processor` until the end or cancel.
    Inference runs on this job thread (where the runners were opened); reading and finishing on
    the core's two stage threads."""
    src = FrameSource(  # UserError for a missing file, at once
        source, max_frames=max_frames, decode_threads=getattr(processor, "decode_threads", None)
    )
    infos = processor.open()
    control.opened.emit(infos)
    split = _splits(processor)
    finish_failed = threading.Event()  # then the last frame is not drawn again at the end

    def finish(state: Any) -> None:
        # decoding + drawing + QImage here, while the next frame is already in inference
        try:
            present(control, processor.finish(state, control.max_size))
        except BaseException:
            finish_failed.set()
            raise

    def whole(frame: Frame) -> None:
        present(control, processor.process(frame, control.max_size))

    realtime = control.realtime
    stats = control.stats
    try:
        run_stages(
            src,
            processor.infer if split else whole,
            finish if split else None,
            prepare=processor.prepare if split else None,
            drop_stale=realtime and src.kind in ("video", "camera"),
            fps=(lambda: src.fps) if realtime and src.kind == "video" else None,
            playback=control.playback,
            cancel=cancel,
            thread_setup=_stage_thread,
            stats=stats,
        )
    finally:
        if not cancel.cancelled and not finish_failed.is_set():
            control.show_last()
        processor.close()
    # CPU seconds per thread: on a machine with few cores, every one of them is taken from
    # inference (the rest of the process's CPU time is the runtime's own worker threads)
    cpu = {k: round(stats.cpu_s.get(k, 0.0), 3) for k in ("infer_thread", "reader_thread")}
    cpu["finish_thread"] = round(stats.cpu_s.get("finish_thread", 0.0), 3) if split else 0.0
    return {
        "cpu_s": cpu,
        "processed": control.processed,
        "dropped": control.dropped,
        "not_shown": control.display_dropped,
        "seconds": stats.seconds,
        "waiting_for_frames_s": round(stats.waiting_s, 3),
        "processing_s": round(stats.busy_s, 3),
        "skipped": [(s.source, s.reason) for s in src.skipped],
        "cancelled": cancel.cancelled,
    }
