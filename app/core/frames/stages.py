"""Three overlapping stages for a stream of frames: read (+ prepare) -> infer -> finish.

The one implementation behind `int8-studio run` (`live.run_live`), the benchmarks and the GUI's
live and compare views (`app.gui.stream.run_stream`). The reader thread decodes (and prepares:
preprocessing, which releases the GIL, sits with decoding so inference does nothing but feed the
runtime); for real-time sources it plays a video at its own rate and replaces a frame nobody has
taken yet instead of queueing it, so a slow model shows the newest frame rather than a backlog.
Inference runs on the calling thread (where the caller opened the runtime's session), the finisher
(postprocessing, drawing, the sink) on a second thread. Both extra threads are plain
`threading.Thread`s; the caller sets their priority through `thread_setup`. Hand-overs hold at
most `depth` items. Any stage's error stops every stage and reaches the caller.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import CancelToken
from app.core.frames.sources import Frame
from app.core.timing import StageTimer

END = object()  # the reader's last item
_POLL_S = 0.05  # how long a waiting stage sleeps before it looks at stop and cancel again


@dataclass
class LiveStats:
    """Counts of one run; `frames_in`, `frames_out` and `dropped` grow while it plays."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    seconds: float = 0.0
    max_queue: int = 0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str = ""
    waiting_s: float = 0.0  # the inference thread waiting for frames
    busy_s: float = 0.0  # the inference thread inferring and handing over
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per stage thread

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "max_queue": self.max_queue,
            "stages": self.stages,
            "error": self.error,
        }


class FrameSlot:
    """The reader's mailbox. `put(block=False)` (real-time sources) keeps only the newest item:
    an untaken one is replaced and counted in `dropped`. `put(block=True)` (files) queues up to
    `depth` items, so a moment's jitter in one stage does not stall the other. After `close` the
    items still waiting are taken first, then END: the last frame is never lost."""

    def __init__(self, depth: int = 2) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[Any] = deque()
        self.depth = depth
        self.closed = False
        self.dropped = 0

    def put(self, item: Any, block: bool, halted: Callable[[], bool] = lambda: False) -> None:
        with self._cond:
            while block and len(self._items) >= self.depth and not halted():
                self._cond.wait(_POLL_S)
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

    def qsize(self) -> int:
        return len(self._items)


class Playback:
    """Pause, single steps and a refresh of the paused frame: set by whoever controls the stream
    (a GUI's buttons, from its own thread), read by the stream's threads."""

    def __init__(self) -> None:
        self.paused = False
        self.refresh = False  # run the last frame again (new thresholds while paused)
        self._steps = 0
        self._lock = threading.Lock()

    def step(self) -> None:
        """Let one more frame through while paused."""
        with self._lock:
            self._steps += 1

    def take_step(self) -> bool:
        with self._lock:
            if self._steps <= 0:
                return False
            self._steps -= 1
            return True


def run_stages(
    frames: Iterable[Frame],
    infer: Callable[[Any], Any],
    finish: Callable[[Any], None] | None = None,
    *,
    prepare: Callable[[Frame], Any] | None = None,
    drop_stale: bool = False,
    fps: Callable[[], float] | None = None,
    playback: Playback | None = None,
    depth: int = 2,
    cancel: CancelToken | None = None,
    timer: StageTimer | None = None,
    thread_setup: Callable[[], None] | None = None,
    stats: LiveStats | None = None,
) -> LiveStats:
    """Run `frames` through `prepare` (reader thread), `infer` (this thread) and `finish` (the
    finisher thread; without it `infer` does all the work and no finisher starts).

    `drop_stale`: replace a frame inference has not taken yet (cameras, real-time views) instead
    of waiting. `fps()`: play at that rate (a video's own; read per frame, since a video's rate
    is known once it opens; 0: as fast as possible). `playback`: pause and step (a stepped frame
    is neither paced nor dropped). `timer` gets each frame's decode time. `thread_setup` runs
    first on both stage threads. `stats` is filled as the run goes (a GUI reads the counts)."""
    cancel = cancel or CancelToken()
    stats = stats if stats is not None else LiveStats()
    stop = CancelToken()  # ours: ending normally must not mark the caller's token cancelled
    errors: list[BaseException] = []
    slot = FrameSlot(depth)
    out: queue.Queue = queue.Queue(maxsize=depth)

    def halted() -> bool:
        return stop.cancelled or cancel.cancelled or bool(errors)

    def fail(exc: BaseException) -> None:
        errors.append(exc)
        stop.cancel()

    def read() -> None:
        base: tuple[float, int] | None = None  # (wall clock, frame index) pacing counts from
        try:
            if thread_setup is not None:
                thread_setup()
            it = iter(frames)
            while not halted():
                t0 = time.perf_counter()
                frame = next(it, None)
                if frame is None:
                    break
                if timer is not None:
                    timer.add("decode_ms", (time.perf_counter() - t0) * 1e3)
                stats.frames_in += 1
                stepping = False
                while playback is not None and playback.paused and not halted():
                    if playback.take_step():
                        stepping = True
                        break
                    base = None  # after a pause the video's clock starts again
                    time.sleep(0.02)
                rate = fps() if fps is not None and not stepping else 0.0
                if rate > 0:
                    if base is None:
                        base = (time.perf_counter(), frame.index)
                    due = base[0] + (frame.index - base[1]) / rate
                    while (wait := due - time.perf_counter()) > 0 and not halted():
                        time.sleep(min(wait, _POLL_S))
                item = prepare(frame) if prepare is not None else frame
                slot.put(item, block=not (drop_stale and not stepping), halted=halted)
                stats.dropped = slot.dropped
                stats.max_queue = max(stats.max_queue, slot.qsize())
        except BaseException as exc:  # handed to the caller at the end
            fail(exc)
        finally:
            stats.cpu_s["reader_thread"] = time.thread_time()
            slot.close()

    def hand_over(state: Any) -> bool:
        while not halted():
            try:
                out.put(state, timeout=_POLL_S)
                stats.max_queue = max(stats.max_queue, out.qsize())
                return True
            except queue.Full:
                continue
        return False

    def finish_all() -> None:
        try:
            if thread_setup is not None:
                thread_setup()
            while not halted():
                try:
                    state = out.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if state is END:
                    break
                finish(state)  # type: ignore[misc]  (only started with a finish stage)
                stats.frames_out += 1
        except BaseException as exc:
            fail(exc)
        finally:
            stats.cpu_s["finish_thread"] = time.thread_time()

    # Stages hand the GIL back and forth around short C calls; CPython's default 5 ms switch
    # interval makes a thread that wants it wait that long, serialising the stages.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(old_interval, 0.0005))
    reader = threading.Thread(target=read, name="frames-read", daemon=True)
    finisher = threading.Thread(target=finish_all, name="frames-finish", daemon=True)
    start = time.perf_counter()
    cpu0 = time.thread_time()
    reader.start()
    if finish is not None:
        finisher.start()
    ended = False  # the reader's END came through: let the finisher drain before stopping it
    try:
        last: Any = None  # the last item taken, run again on a playback refresh
        while not halted():
            t_wait = time.perf_counter()
            item = slot.take(_POLL_S)
            t_got = time.perf_counter()
            stats.waiting_s += t_got - t_wait
            if item is None:
                if playback is not None and playback.refresh and last is not None:
                    playback.refresh = False
                    item = last
                else:
                    continue
            if item is END:
                ended = True
                break
            if playback is not None:
                last = item
            state = infer(item)
            if finish is None:
                stats.frames_out += 1
            elif not hand_over(state):
                break
            stats.busy_s += time.perf_counter() - t_got
    except BaseException as exc:  # KeyboardInterrupt included: the stage threads must end too
        fail(exc)
    finally:
        if finish is not None:
            if ended and hand_over(END):
                finisher.join()  # it ends at END (or on its own error)
            stop.cancel()
            finisher.join(timeout=5)
        stop.cancel()  # the reader may still be pacing a video nobody reads any more
        reader.join(timeout=5)
        sys.setswitchinterval(old_interval)
        stats.cpu_s["infer_thread"] = time.thread_time() - cpu0
        stats.cpu_s.setdefault("finish_thread", 0.0)
        stats.seconds = time.perf_counter() - start
        stats.dropped = slot.dropped
    if errors:
        raise errors[0]
    return stats
