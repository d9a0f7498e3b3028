"""The runner interface every backend implements (after Polygraphy's BaseRunner).

A runner does nothing expensive until `open()` (or `with runner:`); `infer()` checks inputs once
and calls the backend's `_infer()`. It reports the provider that actually runs, never the one that
was merely asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.errors import UserError


@dataclass
class TensorInfo:
    name: str
    shape: list[int | str]  # str for dynamic dims
    dtype: str  # numpy dtype name, e.g. "float32"


@dataclass
class BackendStatus:
    """Whether a backend can run on this machine, and if not, why (one line a user can act on)."""

    name: str
    available: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Runner:
    """Base class: `open()` / `infer(feed) -> outputs` / `close()`, usable as a context manager.

    Subclasses set `self.inputs`, `self.outputs`, `self.active_provider` in `_open()` and
    implement `_infer(feed) -> list[np.ndarray]` (outputs in `self.outputs` order).
    """

    backend: str = "base"

    def __init__(self) -> None:
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self.active_provider: str = ""
        self.fallback_note: str = ""  # non-empty when something other than what was asked runs
        # non-empty when it runs where asked, but not in full as asked (a CUDA graph that could
        # not be captured, an FP16 graph computed in FP32): said, and not a fallback
        self.caveat_note: str = ""
        # the user's model file when the runner runs a derived copy (fused I/O), for messages
        self.source_path: str | None = None
        self.last_infer_ms: float = 0.0
        self._is_open = False

    # lifecycle -----------------------------------------------------------------------------
    def open(self) -> Runner:
        if not self._is_open:
            self._open()
            self._is_open = True
        return self

    def close(self) -> None:
        if self._is_open:
            self._close()
            self._is_open = False

    def __enter__(self) -> Runner:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # inference -----------------------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Run one batch: `feed` maps input names to arrays (or is the one input array)."""
        if not self._is_open:
            self.open()
        if isinstance(feed, np.ndarray):
            if len(self.inputs) != 1:
                names = ", ".join(i.name for i in self.inputs)
                raise UserError(f"this model has {len(self.inputs)} inputs ({names}); pass a dict")
            feed = {self.inputs[0].name: feed}
        for info in self.inputs:
            if info.name not in feed:
                raise UserError(f"missing input '{info.name}' for the model")
            arr = feed[info.name]
            if arr.ndim != len(info.shape):
                raise UserError(
                    f"input '{info.name}' needs {len(info.shape)} dimensions {info.shape}, "
                    f"got shape {list(arr.shape)}"
                )
        t0 = time.perf_counter()
        out = self._infer(feed)
        self.last_infer_ms = (time.perf_counter() - t0) * 1000.0
        return out

    # for subclasses --------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What ran: backend, provider, any fallback note (it ran elsewhere) and any caveat (it
        ran where asked, not in full as asked), for reports and the status bar."""
        return {
            "backend": self.backend,
            "provider": self.active_provider,
            "fallback": self.fallback_note,
            "caveat": self.caveat_note,
        }
