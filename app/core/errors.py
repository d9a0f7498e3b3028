"""The one exception type for problems a user can fix (bad file, missing provider, empty folder).

Core and backends raise it with a message that names the file and says what to do; only the CLI and
GUI decide how to show it. Anything else that escapes is an internal bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; `str(err)` is a complete, one-line message for them."""


class ModelRefused(UserError):
    """A backend refuses to run a model at all (not one input): a command stops at it rather
    than skipping input after input with the same message."""


class HalfPrecisionModel(UserError):
    """The model takes float16 inputs (a half-precision export); `upcast` can make an FP32 copy
    of it, which the GUI offers to do."""


class Cancelled(Exception):
    """Raised inside long jobs when their cancellation token is set."""


class CancelToken:
    """Cooperative cancellation flag shared between a job and whoever may stop it."""

    def __init__(self) -> None:
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check(self) -> None:
        """Raise `Cancelled` if cancellation was requested; call between batches."""
        if self._cancelled:
            raise Cancelled()
