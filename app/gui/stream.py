"""Frame streaming for the live and compare views: a reader with a latest-frame slot, and a
processing job that runs the pipeline(s), draws and converts to QImage off the GUI thread.

The reader plays the source at its own rate (video at its fps, a camera as it delivers) and
replaces an unread frame instead of queuing it, so a slow model shows fresh frames and counts
the stale ones as dropped. At most one processed frame waits for the GUI at a time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from app.core.errors import CancelToken
from app.core.frames.sources import Frame, FrameSource
from app.gui.workers import WORKER_NICE, forget_dummy_thread, lower_thread_priority

END = object()  # the reader's last item
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


class LatestSlot:
    """The reader's mailbox. Paced sources (`put(block=False)`) keep only the newest frame: an
    unread one is replaced and counted in `dropped`. Unpaced files (`block=True`) queue up to
    `depth` frames, so a moment's jitter in one stage does not stall the other."""

    def __init__(self, depth: int = 2) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[Any] = deque()
        self.depth = depth
        self.closed = False
        self.dropped = 0

    def put(self, item: Any, block: bool, cancel: CancelToken) -> None:
        with self._cond:
            while block and len(self._items) >= self.depth and not cancel.cancelled:
                self._cond.wait(0.05)
            if not block:
                self.dropped += len(self._items)
                self._items.clear()
            self._items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def take(self, timeout: float) -> Any:
        """The oldest waiting item, END once closed and empty, or None after `timeout` s."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return END if self.closed else None


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
        self.paused = False
        self.steps = 0
        self.refresh = False
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
        self.slot = LatestSlot()
        self._lock = threading.Lock()
        self._packet: Packet | None = None
        self._timings: list[list[dict[str, float]]] = []  # frames finished since the last take
        self._undrawn: Packet | None = None  # the latest frame, when it was not drawn

    @property
    def dropped(self) -> int:
        """Frames never processed: the model was slower than the source (stale, not queued)."""
        return self.slot.dropped

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
            self.processed += 1
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


class _Reader(QRunnable):
    """Reads the source into the latest-frame slot at the source's own pace."""

    def __init__(
        self, source: FrameSource, control: StreamControl, cancel: CancelToken, prepare: Any
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.source, self.control, self.cancel = source, control, cancel
        self.prepare = prepare  # None, or the processor's first stage
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.cpu_s = 0.0  # CPU time this thread used (decoding, pacing)

    def run(self) -> None:
        lower_thread_priority(STAGE_NICE)
        cpu0 = time.thread_time()  # pool threads are reused: count from here
        ctl, slot = self.control, self.control.slot
        base: tuple[float, int] | None = None  # (wall clock, frame index) the pacing counts from
        try:
            for frame in self.source:
                if self.cancel.cancelled:
                    break
                stepping = False
                while ctl.paused and not self.cancel.cancelled:
                    if ctl.steps > 0:
                        ctl.steps -= 1
                        stepping = True
                        break
                    base = None
                    time.sleep(0.02)
                paced = ctl.realtime and self.source.kind in ("video", "camera") and not stepping
                if paced and self.source.kind == "video" and self.source.fps > 0:
                    if base is None:
                        base = (time.perf_counter(), frame.index)
                    due = base[0] + (frame.index - base[1]) / self.source.fps
                    while (wait := due - time.perf_counter()) > 0 and not self.cancel.cancelled:
                        time.sleep(min(wait, 0.05))
                item = self.prepare(frame) if self.prepare is not None else frame
                slot.put(item, block=not paced, cancel=self.cancel)
        except BaseException as exc:  # handed to the stream job, which reports it
            self.error = exc
        finally:
            self.cpu_s = time.thread_time() - cpu0
            slot.close()
            forget_dummy_thread()
            self.done.set()


def present(control: StreamControl, packet: Packet) -> None:
    """Hand a processed frame to the view, drawing it first if the screen has a refresh for it.
    Decided after processing, not before: asked at the start of a 47 ms compare step, the GUI
    had always just been handed the previous image, and every other frame went undrawn."""
    if not packet.images and packet.draw is not None and control.wants_image():
        packet.images = packet.draw()
    control.deliver(packet)


def _splits(processor: Any) -> bool:
    return all(callable(getattr(processor, n, None)) for n in ("prepare", "infer", "finish"))


class _Finisher:
    """Second stage of a split processor on its own thread, fed through a two-item queue."""

    def __init__(self, processor: Any, control: StreamControl) -> None:
        self.processor, self.control = processor, control
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.cpu_s = 0.0
        self.thread = threading.Thread(target=self._run, name="stream-finish", daemon=True)
        self.thread.start()

    def put(self, state: Any, cancel: CancelToken) -> None:
        while not cancel.cancelled and self.error is None:
            try:
                self.queue.put(state, timeout=0.05)
                return
            except queue.Full:
                continue
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        lower_thread_priority(STAGE_NICE)
        try:
            while (state := self.queue.get()) is not END:
                ctl = self.control
                present(ctl, self.processor.finish(state, ctl.max_size))
            self.cpu_s = time.thread_time()
        except BaseException as exc:  # re-raised by the stream job
            self.error = exc
            while self.queue.get() is not END:  # keep draining so put() never blocks forever
                pass

    def stop(self) -> None:
        self.queue.put(END)
        self.thread.join(5.0)


def run_stream(
    processor: Processor,
    source: str,
    control: StreamControl,
    max_frames: int | None = None,
    *,
    progress: Any = None,
    cancel: CancelToken,
) -> dict[str, Any]:
    """Job body: open the runner(s), play `source` through `processor` until the end or cancel."""
    src = FrameSource(  # UserError for a missing file, at once
        source, max_frames=max_frames, decode_threads=getattr(processor, "decode_threads", None)
    )
    infos = processor.open()
    control.opened.emit(infos)
    stop = CancelToken()  # the reader's own token: ending normally must not mark the job cancelled
    finisher = _Finisher(processor, control) if _splits(processor) else None
    reader = _Reader(src, control, stop, processor.prepare if finisher is not None else None)
    QThreadPool.globalInstance().start(reader)
    last: Any = None  # the last item taken: a Frame, or what `prepare` made of one
    t0 = time.perf_counter()
    cpu0 = time.thread_time()
    waited = busy = 0.0  # seconds waiting for the reader / processing frames
    try:
        while not cancel.cancelled:
            t_wait = time.perf_counter()
            item = control.slot.take(0.05)
            t_got = time.perf_counter()
            waited += t_got - t_wait
            if item is None:
                if control.refresh and last is not None:
                    control.refresh = False
                    item = last  # never drawn on (finish draws on a copy), so safe to re-run
                else:
                    continue
            if item is END:
                break
            last = item
            if finisher is not None:
                # inference here, decoding + drawing + QImage on the finisher thread: while
                # one frame is drawn the next one is already in inference
                finisher.put(processor.infer(item), cancel)
            else:
                present(control, processor.process(item, control.max_size))
            busy += time.perf_counter() - t_got
    finally:
        stop.cancel()  # the reader may still be pacing a video we stopped reading
        reader.done.wait(5.0)
        if finisher is not None:
            finisher.stop()
        if not cancel.cancelled and (finisher is None or finisher.error is None):
            control.show_last()
        processor.close()
    if finisher is not None and finisher.error is not None:
        raise finisher.error
    if reader.error is not None:
        raise reader.error
    seconds = time.perf_counter() - t0
    # CPU seconds per thread: on a machine with few cores, every one of them is taken from
    # inference (the rest of the process's CPU time is the runtime's own worker threads)
    cpu = {
        "infer_thread": round(time.thread_time() - cpu0, 3),
        "reader_thread": round(reader.cpu_s, 3),
        "finish_thread": round(finisher.cpu_s, 3) if finisher is not None else 0.0,
    }
    return {
        "cpu_s": cpu,
        "processed": control.processed,
        "dropped": control.dropped,
        "not_shown": control.display_dropped,
        "seconds": seconds,
        "waiting_for_frames_s": round(waited, 3),
        "processing_s": round(busy, 3),
        "skipped": [(s.source, s.reason) for s in src.skipped],
        "cancelled": cancel.cancelled,
    }
