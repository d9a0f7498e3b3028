"""The recording stand-ins offer nothing the real API lacks, with the real parameter names."""

from __future__ import annotations

import enum
import inspect
from typing import Any

from tests.backends.tensorrt import standins as s
from tests.backends.tensorrt.real_api.signatures import overloads


def _public(obj: Any) -> list[str]:
    return sorted(n for n in dir(obj) if not n.startswith("_") and n != "REAL")


def _param_names(fn: Any) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


def _compare(stand_in_obj: Any, real_cls: Any, where: str) -> list[str]:
    """Every public name of the stand-in object on the real class, methods with its parameters."""
    found = []
    for name in _public(stand_in_obj):
        real = inspect.getattr_static(real_cls, name, None)
        if real is None:
            found.append(f"{where}.{name}: the real {real_cls.__name__} has no such attribute")
            continue
        mine = inspect.getattr_static(type(stand_in_obj), name, None)
        if callable(mine) and not isinstance(mine, type | property):
            real_sigs = overloads(getattr(real_cls, name))
            got = _param_names(getattr(stand_in_obj, name))
            # The stand-in may leave out trailing parameters that have defaults, nothing else.
            fit = [
                o
                for o in real_sigs
                if [p for p, _ in o[: len(got)]] == got and all(d for _, d in o[len(got) :])
            ]
            wanted = [[p for p, _ in o] for o in real_sigs]
            if real_sigs and not fit:
                found.append(f"{where}.{name}{tuple(got)}: the real one takes {wanted}")
        elif not isinstance(real, property) and not inspect.isclass(real):
            found.append(f"{where}.{name}: a data attribute here, a {type(real).__name__} there")
    return found


def _instances(stand_in: s.RecordingTrtStandIn) -> list[Any]:
    network = s._Network(stand_in)
    made = [
        s._Tensor(stand_in, "images", [1, 3]), network, s._Profile(stand_in),
        s._TimingCache(stand_in, b""), s._Context(stand_in), s._Engine(stand_in),
        stand_in.Builder(None), stand_in.OnnxParser(network, None), stand_in.Runtime(None),
        stand_in.Builder(None).create_builder_config(),
    ]  # fmt: skip
    return made


def test_trt_stand_in_is_a_subset_of_the_real_module(trt: Any) -> None:
    stand_in = s.RecordingTrtStandIn(trt.__version__)
    found = [f"tensorrt.{n}: no such name" for n in _public(stand_in) if not hasattr(trt, n)]
    for name in _public(stand_in):
        mine, real = getattr(stand_in, name), getattr(trt, name, None)
        if isinstance(mine, type) and issubclass(mine, enum.Enum) and real is not None:
            extra = set(mine.__members__) - set(real.__members__)
            found += [f"tensorrt.{name}.{m}: not in TensorRT {trt.__version__}" for m in extra]
    for level in ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"):
        if not hasattr(trt.ILogger, level):
            found.append(f"tensorrt.ILogger.{level}: no such severity")
    for obj in _instances(stand_in):
        found += _compare(obj, getattr(trt, obj.REAL), type(obj).__name__)
    assert found == []
    checked = {type(o).REAL for o in _instances(stand_in)}
    assert {"Builder", "IBuilderConfig", "ICudaEngine", "IExecutionContext", "Runtime"} <= checked


def test_calibrator_bases_exist_exactly_where_the_stand_in_has_them(trt: Any, major: int) -> None:
    stand_in = s.RecordingTrtStandIn(trt.__version__)
    for name in ("IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator"):
        assert hasattr(stand_in, name) == hasattr(trt, name) == (major == 10)


def test_cudart_stand_in_is_a_subset_of_real_cuda_python(cudart: Any) -> None:
    stand_in = s.RecordingCudartStandIn()
    found = []
    for name in _public(stand_in):
        real = getattr(cudart, name, None)
        mine = getattr(stand_in, name)
        if real is None:
            found.append(f"cuda.bindings.runtime.{name}: no such name")
        elif isinstance(mine, type) and issubclass(mine, enum.Enum):
            found += [f"{name}.{m}: no such member" for m in mine.__members__
                      if m not in real.__members__]  # fmt: skip
        else:
            real_names = [p for p in inspect.signature(real).parameters]
            if _param_names(mine) != real_names:
                found.append(f"{name}{tuple(_param_names(mine))}: the real one takes {real_names}")
    props = cudart.cudaDeviceProp()
    found += [f"cudaDeviceProp.{a}: no such field" for a in ("name", "major", "minor")
              if not hasattr(props, a)]  # fmt: skip
    assert found == []
