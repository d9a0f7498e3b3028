"""Calibrator plumbing against the recording stand-ins (argument flow only, not TensorRT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.backends.tensorrt.calibrator import make_calibrator
from app.core.errors import CancelToken, UserError
from tests.backends.tensorrt.standins import RecordingCudartStandIn, RecordingTrtStandIn, names


# ------------------------------------------------------------------------------------------
# calibrator plumbing
# ------------------------------------------------------------------------------------------
def test_calibrator_feeds_batches_in_name_order_and_frees(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn(), RecordingCudartStandIn()
    rng = np.random.default_rng(0)
    batches = [{"a": rng.random((2, 3), np.float32), "b": rng.random((2, 5), np.float32)}
               for _ in range(3)]  # fmt: skip
    seen: list[int] = []
    cal = make_calibrator(trt, batches, tmp_path / "c.cache", "minmax", cudart=cudart,
                          progress=seen.append)  # fmt: skip
    assert isinstance(cal, trt.IInt8MinMaxCalibrator) and cal._base_init_called == "minmax"
    assert cal.get_batch_size() == 2
    for batch in batches:
        ptr_b, ptr_a = cal.get_batch(["b", "a"])
        np.testing.assert_array_equal(cudart._read(ptr_a, (2, 3)), batch["a"])
        np.testing.assert_array_equal(cudart._read(ptr_b, (2, 5)), batch["b"])
    assert len(names(cudart._calls, "cudaMalloc")) == 2  # once per input, not per batch
    assert len(names(cudart._calls, "cudaMemcpy")) == 6
    assert cal.get_batch(["b", "a"]) is None
    assert cudart._memory == {} and seen == [1, 2, 3]
    assert cal.error is None


def test_calibrator_cache_read_write(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn(), RecordingCudartStandIn()
    cache = tmp_path / "sub" / "calib.cache"
    cal = make_calibrator(trt, [], cache, cudart=cudart)
    assert cal._base_init_called == "entropy2"
    assert cal.read_calibration_cache() is None
    cal.write_calibration_cache(memoryview(b"TRT-100300-EntropyCalibration2\nx: 3c010204\n"))
    assert cache.read_bytes().startswith(b"TRT-100300")
    assert cal.read_calibration_cache() == cache.read_bytes()
    assert not list(cache.parent.glob("*.part"))


def test_calibrator_errors_are_kept_not_thrown_into_tensorrt(tmp_path: Path) -> None:
    trt, cudart = RecordingTrtStandIn(), RecordingCudartStandIn()
    batches = [{"a": np.zeros((1, 3), np.float32)}, {"a": np.zeros((2, 3), np.float32)}]
    cal = make_calibrator(trt, batches, None, cudart=cudart)
    assert cal.get_batch(["a"]) is not None
    assert cal.get_batch(["a"]) is None  # shape changed: stop, keep the reason
    assert isinstance(cal.error, UserError) and "use one shape throughout" in str(cal.error)
    assert cudart._memory == {}

    cal = make_calibrator(trt, [{"x": np.zeros(3, np.float32)}], None, cudart=cudart)
    assert cal.get_batch(["images"]) is None and "no input 'images'" in str(cal.error)


def test_calibrator_cancel_and_rewind(tmp_path: Path) -> None:
    trt, cudart, token = RecordingTrtStandIn(), RecordingCudartStandIn(), CancelToken()
    batches = [{"a": np.ones((1, 2), np.float32)}] * 2
    cal = make_calibrator(trt, batches, None, cudart=cudart, cancel=token)
    assert cal.get_batch(["a"]) is not None
    token.cancel()
    assert cal.get_batch(["a"]) is None
    cal.rewind()
    assert cal.batches_served == 0
    cal.free()
    assert cudart._memory == {}
    with pytest.raises(UserError, match="unknown calibrator"):
        make_calibrator(trt, batches, None, "percentile", cudart=cudart)
