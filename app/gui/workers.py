"""One worker abstraction for every long job: QRunnable + QObject signals on a QThreadPool.

A job is a plain function that takes keyword arguments `progress(fraction, message)` and
`cancel` (a `CancelToken`) and returns a plain result (the napari/superqt pattern). Signals are
delivered on the GUI thread; the job body never touches widgets. Errors from every job go to one
sink (`WorkerPool.error`) that logs the traceback; panels show the message inline.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.core.errors import Cancelled, CancelToken, UserError

log = logging.getLogger("app.gui")

# Live, compare and a calibration can run at once; a 2-core machine would otherwise queue them.
MIN_POOL_THREADS = 8
# Worker threads (and the ONNX Runtime threads they create, which inherit it) yield to the GUI
# thread when the cores are busy: on a 2-core machine a frame or a calibration batch otherwise
# delays the GUI by a scheduler slice or more.
WORKER_NICE = 5


def lower_thread_priority(nice: int = WORKER_NICE) -> None:
    """Make the calling thread `nice` (Linux: per thread; elsewhere nothing). Only ever lowers."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:  # not permitted in some sandboxes: run at normal priority
        pass


class JobSignals(QObject):
    """Signals of one job; they live on the GUI thread so connected slots run there."""

    progress = Signal(float, str)
    finished = Signal(object)
    error = Signal(str, str)  # message for the user, traceback (empty for UserError)
    cancelled = Signal()
    done = Signal()  # always last, whatever happened


class Job(QRunnable):
    """Runs `fn(*args, progress=..., cancel=..., **kwargs)` on a pool thread."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the pool must not delete what Python still references
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.name = name or getattr(fn, "__name__", "job")
        self.token = CancelToken()
        self.signals = JobSignals()
        self.running = True
        self._last_progress = 0.0

    def cancel(self) -> None:
        self.token.cancel()

    def _progress(self, fraction: float, message: str = "") -> None:
        # Rate-limited: a job reporting per image must not flood the GUI's event queue.
        now = time.perf_counter()
        if fraction < 1.0 and now - self._last_progress < 0.05:
            return
        self._last_progress = now
        self.signals.progress.emit(float(fraction), str(message))

    def run(self) -> None:
        lower_thread_priority()
        try:
            result = self.fn(*self.args, progress=self._progress, cancel=self.token, **self.kwargs)
        except Cancelled:
            self.signals.cancelled.emit()
        except UserError as exc:
            self.signals.error.emit(str(exc), "")
        except Exception as exc:  # an internal bug: keep the traceback for the log
            self.signals.error.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            if self.token.cancelled:
                self.signals.cancelled.emit()
            else:
                self.signals.finished.emit(result)
        finally:
            self.running = False
            self.signals.done.emit()
            forget_dummy_thread()


def forget_dummy_thread() -> None:
    """Drop the `_DummyThread` Python registers for a pool thread that logged (logging asks for
    the current thread); Python < 3.13 never removes those, so thread counts would only grow."""
    current = threading._active.get(threading.get_ident())  # type: ignore[attr-defined]
    if isinstance(current, threading._DummyThread):  # type: ignore[attr-defined]
        threading._active.pop(threading.get_ident(), None)  # type: ignore[attr-defined]


class WorkerPool(QObject):
    """Starts jobs, keeps them alive while they run, routes errors to one sink, stops them all."""

    error = Signal(str, str, str)  # job name, message, traceback

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool.globalInstance()
        if self.pool.maxThreadCount() < MIN_POOL_THREADS:
            self.pool.setMaxThreadCount(MIN_POOL_THREADS)
        self.jobs: list[Job] = []

    def start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str = "",
        on_progress: Callable[[float, str], None] | None = None,
        on_finished: Callable[[Any], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_done: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> Job:
        """Run `fn` on a pool thread; callbacks run on the GUI thread."""
        job = Job(fn, *args, name=name, **kwargs)
        sig = job.signals
        if on_progress:
            sig.progress.connect(on_progress)
        if on_finished:
            sig.finished.connect(on_finished)
        sig.error.connect(lambda msg, tb, j=job: self._report(j, msg, tb))
        if on_error:
            sig.error.connect(on_error)
        if on_cancelled:
            sig.cancelled.connect(on_cancelled)
        if on_done:
            sig.done.connect(on_done)
        sig.done.connect(lambda j=job: self._forget(j))
        self.jobs.append(job)
        self.pool.start(job)
        return job

    def _report(self, job: Job, message: str, tb: str) -> None:
        """The one error sink: log (with traceback for bugs) and tell listeners."""
        if tb:
            log.error("%s failed: %s\n%s", job.name, message, tb)
        else:
            log.warning("%s: %s", job.name, message)
        self.error.emit(job.name, message, tb)

    def _forget(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)

    def running(self) -> list[Job]:
        return [j for j in self.jobs if j.running]

    def stop_all(self, timeout: float = 3.0) -> bool:
        """Cancel every job and wait up to `timeout` seconds; True when all threads finished."""
        for job in list(self.jobs):
            job.cancel()
        ok = self.pool.waitForDone(int(timeout * 1000))
        self.jobs.clear()
        return ok


_default: WorkerPool | None = None


def default_pool() -> WorkerPool:
    """The process-wide pool panels share when no window gives them one."""
    global _default
    if _default is None:
        _default = WorkerPool()
    return _default
