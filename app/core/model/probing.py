"""Run a model on a few frames on the CPU to see what its outputs hold (shapes, ranges, boxes).

The frames are the user's own images when the caller has some (the output format is then judged
on real detections), else built-in synthetic scenes. Preprocessing here is a plain version of the
frames package's (which sits above this package): good enough to read output layouts, not for
accuracy.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from app.core.errors import UserError
from app.core.model.spec import Preprocess
from app.core.ort_session import cpu_session

MAX_PROBE_FRAMES = 4  # each probe is one CPU inference at load time


def synthetic_frames() -> list[np.ndarray]:
    """Two deterministic BGR scenes: a mid-grey frame and a textured one with solid shapes."""
    grey = np.full((480, 640, 3), 127, np.uint8)
    rng = np.random.default_rng(7)
    scene = np.empty((480, 640, 3), np.uint8)
    scene[...] = np.linspace(40, 220, 640, dtype=np.float32)[None, :, None].astype(np.uint8)
    scene = cv2.add(scene, rng.integers(0, 30, scene.shape, dtype=np.uint8))
    cv2.rectangle(scene, (80, 120), (260, 400), (40, 60, 200), -1)
    cv2.circle(scene, (450, 220), 90, (200, 160, 30), -1)
    return [grey, scene]


def read_probe_frames(paths: list[Path] | None) -> tuple[list[np.ndarray], bool]:
    """(frames, real): up to MAX_PROBE_FRAMES readable images from `paths`, else synthetic."""
    frames = []
    for path in paths or []:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None and img.size:
            frames.append(img)
        if len(frames) >= MAX_PROBE_FRAMES:
            break
    return (frames, True) if frames else (synthetic_frames(), False)


def probe_tensor(bgr: np.ndarray, pre: Preprocess, batch: int) -> np.ndarray:
    """A [batch, ...] input for `pre` from one BGR frame (letterbox or stretch only)."""
    th, tw = pre.size
    h, w = bgr.shape[:2]
    if pre.resize == "letterbox":
        r = min(th / h, tw / w)
        nh, nw = max(1, int(h * r)), max(1, int(w * r))
        img = np.full((th, tw, 3), int(pre.pad_value), np.uint8)
        top, left = ((th - nh) // 2, (tw - nw) // 2) if pre.pad_center else (0, 0)
        img[top : top + nh, left : left + nw] = cv2.resize(bgr, (nw, nh))
    else:
        img = cv2.resize(bgr, (tw, th), interpolation=cv2.INTER_AREA)
    if pre.color == "RGB":
        img = img[:, :, ::-1]
    if pre.input_dtype == "uint8":
        x = np.ascontiguousarray(img)
    else:
        x = (img.astype(np.float32) * pre.scale - np.float32(pre.mean)) / np.float32(pre.std)
    if pre.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(np.repeat(x[None], batch, axis=0))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:320] if str(exc) else type(exc).__name__


def run_probes(
    model_file: Path,
    input_name: str,
    pre: Preprocess,
    frames: list[np.ndarray],
    batch: int = 1,
    try_batch: int = 0,
) -> tuple[list[dict[str, np.ndarray]], str]:
    """(outputs by name, one dict per frame; why a batch of `try_batch` frames fails, "" when
    it runs or was not tried). `UserError` (naming the file) when ORT cannot run the model.

    A batch declared dynamic is not always one: an exporter that wrote a fixed Reshape or
    Flatten size makes every batch but 1 fail, which the callers must know before batching."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    batch_problem = ""
    try:
        # severity 4: the failure is reported below, in one line
        sess = cpu_session(model_file, threads=1, log_severity=4)
        names = [o.name for o in sess.get_outputs()]
        results = []
        for frame in frames:
            values = sess.run(None, {input_name: probe_tensor(frame, pre, batch)})
            results.append(dict(zip(names, (np.asarray(v) for v in values))))
        if try_batch > 1 and frames:
            try:
                sess.run(None, {input_name: probe_tensor(frames[0], pre, try_batch)})
            except Exception as exc:  # the same unrelated ORT types as below
                batch_problem = _first_line(exc)
    except Exception as exc:  # ORT raises several unrelated types for unusable graphs
        raise UserError(
            f"{model_file}: ONNX Runtime cannot run this model ({_first_line(exc)})"
        ) from exc
    finally:
        ort.set_default_logger_severity(2)
    return results, batch_problem
