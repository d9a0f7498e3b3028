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


class FixableByCopy(UserError):
    """A model the app cannot open as it is, but whose copy written by `adapt` it can; the GUI
    offers to write that copy (`action` is its button's text)."""

    action = "Write a copy the app can open, and open it"


class HalfPrecisionModel(FixableByCopy):
    """The model takes float16 inputs (a half-precision export); `adapt` writes an FP32 copy."""

    action = "Write an FP32 copy and open it"


class UnorderedModel(FixableByCopy):
    """The model's nodes are out of dependency order (float16 converters write such graphs);
    `adapt` writes a copy in order."""

    action = "Write a copy in order and open it"


class UnbatchedModel(FixableByCopy):
    """The image input has no batch axis ([3, H, W]: torchvision's detectors); `adapt` writes
    a copy that takes [1, 3, H, W]."""

    action = "Write a copy with a batch axis and open it"


class GrayscaleModel(FixableByCopy):
    """The image input has one channel; `adapt` writes a copy that takes RGB and converts it to
    gray as its first node."""

    action = "Write a copy that takes colour frames and open it"


class SizeInputsModel(FixableByCopy):
    """Beside the image the model takes the original picture's size (PaddleDetection's
    `im_shape` / `scale_factor`, RT-DETR's `orig_target_sizes`); `adapt` writes a copy that
    computes them from the image."""

    action = "Write a copy that takes the image alone and open it"


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
