"""The real `tensorrt` and `cuda.bindings.runtime` modules with every use of them checked.

`CheckedTrt` is NVIDIA's real module; only the three factories that need libnvinfer (Builder,
OnnxParser, Runtime) and what they return come from the recording stand-in, wrapped so that each
attribute, call (arity, keywords, and argument conversion by the real pybind11 function) and
property assignment is checked against the real class first. The fake build calls the app's
logger, progress monitor and calibrator through TensorRT's C++ trampolines where the base binding
dispatches to Python. `CheckedCudart` calls the real cuda-python function with the app's
arguments (without a driver it returns an error code after converting them), then answers with
the stand-in. Every mismatch is appended to `problems`; tests assert the list stays empty.
"""

from __future__ import annotations

import inspect
from typing import Any

from tests.backends.tensorrt.real_api.signatures import accepts_in_child, call_fits, overloads
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn

MISSING = object()
# Base bindings that dispatch to the Python override through the C++ trampoline (seen in 10.x
# and 11.x); the calibrator's other base bindings do not, so those are called directly.
TRAMPOLINED = {"log", "phase_start", "step_complete", "phase_finish", "get_batch_size"}


class Checked:
    """A stand-in object seen through the real class it imitates."""

    def __init__(self, obj: Any, real_cls: type, owner: CheckedTrt) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_real_cls", real_cls)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Any:
        obj, cls, owner = self._obj, self._real_cls, self._owner
        if name.startswith("_"):  # the stand-in's own bookkeeping, not API
            return getattr(obj, name)
        real = inspect.getattr_static(cls, name, MISSING)
        if real is MISSING:
            owner.problem(f"{cls.__name__}.{name}: no such attribute in TensorRT {owner.version}")
            raise AttributeError(name)
        if isinstance(real, property):
            return owner.wrap(getattr(obj, name))
        fn = getattr(cls, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            owner.check_call(cls, name, fn, args, kwargs)
            return owner.wrap(getattr(obj, name)(*args, **kwargs))

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        cls, owner = self._real_cls, self._owner
        real = inspect.getattr_static(cls, name, MISSING)
        where = f"{cls.__name__}.{name} = {type(value).__name__}"
        if not isinstance(real, property) or real.fset is None:
            owner.problem(f"{where}: not a settable property in TensorRT {owner.version}")
            raise AttributeError(name)
        ok, text = accepts_in_child(lambda: setattr(cls.__new__(cls), name, owner.conv(value)))
        if not ok:
            owner.problem(f"{where}: the real setter rejects it: {text[:300]}")
        setattr(self._obj, name, value)


class CheckedTrt:
    """Module-like: real attributes, checked stand-in factories, `problems` collected."""

    def __init__(self, real: Any, problems: list[str], *, fail_build: bool = False) -> None:
        self._real, self.problems = real, problems
        self.version = self.__version__ = str(real.__version__)
        stand_in = RecordingTrtStandIn(self.version, fail_build=fail_build)
        # The fake plays TensorRT's part with TensorRT's own enums and callback bases.
        for name in ("ILogger", "TensorIOMode", "DataType"):
            setattr(stand_in, name, getattr(real, name))
        stand_in._dispatch = self._dispatch
        self.stand_in = stand_in
        self.Builder = self._factory(stand_in.Builder, real.Builder)
        self.OnnxParser = self._factory(stand_in.OnnxParser, real.OnnxParser)
        self.Runtime = self._factory(stand_in.Runtime, real.Runtime)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def conv(self, value: Any) -> Any:
        """What the real binding would receive: an empty real object in place of a stand-in."""
        if isinstance(value, Checked):
            cls = value._real_cls
            return cls.__new__(cls)
        if isinstance(value, list | tuple):
            return type(value)(self.conv(v) for v in value)
        return value

    def wrap(self, value: Any) -> Any:
        real_name = getattr(type(value), "REAL", None)
        if real_name is None or isinstance(value, Checked):
            return value
        return Checked(value, getattr(self._real, real_name), self)

    def check_call(self, cls: type, name: str, fn: Any, args: tuple, kwargs: dict) -> None:
        where = f"{cls.__name__}.{name}"
        reason = call_fits(fn, len(args), list(kwargs))
        if reason:
            self.problem(f"{where}: {reason} (TensorRT {self.version})")
            return
        conv_args, conv_kw = self.conv(list(args)), {k: self.conv(v) for k, v in kwargs.items()}
        ok, text = accepts_in_child(lambda: fn(cls.__new__(cls), *conv_args, **conv_kw))
        if not ok:
            self.problem(f"{where}: the real binding rejects the arguments: {text[:400]}")

    def _factory(self, stand_in_cls: type, real_cls: type) -> Any:
        def make(*args: Any, **kwargs: Any) -> Checked:
            reason = call_fits(real_cls.__init__, len(args), list(kwargs))
            if reason:
                self.problem(f"{real_cls.__name__}(): {reason}")
            conv_args = self.conv(list(args))
            ok, text = accepts_in_child(lambda: real_cls(*conv_args, **kwargs))
            if not ok:
                self.problem(f"{real_cls.__name__}(): the real constructor rejects: {text[:300]}")
            return Checked(stand_in_cls(*args, **kwargs), real_cls, self)

        return make

    def _dispatch(self, obj: Any, base_name: str, method: str, *args: Any) -> Any:
        """Call an app callback the way TensorRT does, through the trampoline where it can."""
        base = getattr(self._real, base_name, None)
        where = f"{base_name}.{method}"
        if base is None or not isinstance(obj, base):
            self.problem(f"{where}: the app's object is not a real {base_name}")
            return None
        override = getattr(type(obj), method, None)
        if override is None or override is getattr(base, method, None):
            self.problem(f"{where}: the app does not override it")
            return None
        sigs = overloads(getattr(base, method))
        if sigs and len(inspect.signature(override).parameters) - 1 != len(sigs[0]):
            self.problem(f"{where}: the app's override takes other arguments than {sigs[0]}")
        if method in TRAMPOLINED:
            return getattr(base, method)(obj, *args)
        result = getattr(obj, method)(*args)
        doc = (getattr(base, method).__doc__ or "").splitlines()[0]
        declared = doc.rsplit("->", 1)[-1].strip()
        if declared.startswith("list[int]") and result is not None:
            if not all(isinstance(p, int) for p in result):
                self.problem(f"{where}: returned {result!r}, TensorRT wants {declared}")
        elif declared.endswith("Buffer") and result is not None:
            try:
                memoryview(result)
            except TypeError:
                self.problem(f"{where}: returned a {type(result).__name__}, not a buffer")
        elif declared == "None" and result is not None:
            self.problem(f"{where}: returned {result!r}, TensorRT expects None")
        return result


class CheckedCudart:
    """Real `cuda.bindings.runtime` calls with the app's arguments, answered by the stand-in."""

    HANDLES = {"cudaStreamCreate": "cudaStream_t", "cudaEventCreate": "cudaEvent_t"}

    def __init__(self, real: Any, problems: list[str]) -> None:
        self._real, self.problems = real, problems
        self.stand_in = RecordingCudartStandIn()

    def __getattr__(self, name: str) -> Any:
        real_attr = getattr(self._real, name, MISSING)
        if real_attr is MISSING:
            self.problems.append(f"cuda.bindings.runtime.{name}: no such name")
            raise AttributeError(name)
        if not callable(real_attr) or isinstance(real_attr, type):
            return real_attr
        fake = getattr(self.stand_in, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            reason = call_fits(real_attr, len(args), list(kwargs))
            if reason:
                self.problems.append(f"cudart.{name}: {reason}")
            try:
                real_attr(*args, **kwargs)  # no driver: converts the arguments, returns an error
            except (TypeError, ValueError, OverflowError) as exc:
                self.problems.append(f"cudart.{name}{args!r}: real cuda-python rejects: {exc}")
            result = list(fake(*args, **kwargs))
            result[0] = self._real.cudaError_t.cudaSuccess
            if name in self.HANDLES:
                result[1] = getattr(self._real, self.HANDLES[name])(result[1])
            return tuple(result)

        return call
