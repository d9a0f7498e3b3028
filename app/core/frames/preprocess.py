"""Frame to tensor: letterbox, short-side crop, resize + centre crop, stretch; NCHW or NHWC.

All pixel work is done by OpenCV and numpy into buffers allocated once per shape (a small ring,
so a tensor stays valid while the next frame is prepared on another thread).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from app.core.model.spec import Preprocess

RING = 3  # tensors alive at once: one being filled, one in inference, one spare


@dataclass
class Geometry:
    """Maps model-input pixels back to source pixels: src = (model + offset) / scale."""

    scale_x: float
    scale_y: float
    off_x: float
    off_y: float
    src_w: int
    src_h: int
    in_w: int
    in_h: int

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes [N, 4] x1,y1,x2,y2 in model pixels -> source pixels, clipped to the frame."""
        # whole-array arithmetic with per-column constants (column fancy-indexing took 3x as
        # long: this runs per frame, holding the GIL, beside a 1 ms GPU inference)
        out = np.array(boxes, dtype=np.float32, copy=True)
        out += np.array((self.off_x, self.off_y, self.off_x, self.off_y), np.float32)
        out /= np.array((self.scale_x, self.scale_y, self.scale_x, self.scale_y), np.float32)
        lim = np.array((self.src_w, self.src_h, self.src_w, self.src_h), np.float32)
        np.clip(out, 0.0, lim, out=out)
        return out


def target_shape(pre: Preprocess, src_h: int, src_w: int) -> tuple[int, int]:
    """(height, width) of the model input for a source frame of this size."""
    if pre.resize == "short_side_crop" and pre.short_side:
        s = pre.short_side / min(src_h, src_w)
        nh, nw = round(src_h * s), round(src_w * s)
        return max(pre.stride, nh // pre.stride * pre.stride), max(
            pre.stride, nw // pre.stride * pre.stride
        )
    return pre.size[0], pre.size[1]


def shrink_interpolation(scale: float, *, letterbox: bool = False) -> int:
    """OpenCV interpolation for resizing by `scale`: area averaging when shrinking, because
    bilinear sampling skips pixels and aliases (a 96x96 classifier fed by `stretch` lost 8 points
    of top-1 to it). Letterboxing detectors (YOLOX, Ultralytics) are trained on bilinear
    letterboxes, so there it stays bilinear down to half size and averages only below that, where
    bilinear drops most pixels."""
    if scale < (0.5 if letterbox else 1.0):
        return cv2.INTER_AREA
    return cv2.INTER_LINEAR


def resize_frame(
    bgr: np.ndarray, pre: Preprocess, canvas: np.ndarray | None = None
) -> tuple[np.ndarray, Geometry]:
    """Resize/crop/pad a BGR uint8 frame to the model's input size (still uint8, HWC)."""
    h, w = bgr.shape[:2]
    th, tw = target_shape(pre, h, w)
    if pre.resize == "letterbox":
        r = min(th / h, tw / w)
        nh, nw = max(1, int(h * r)), max(1, int(w * r))
        if canvas is None or canvas.shape[:2] != (th, tw):
            canvas = np.empty((th, tw, 3), dtype=np.uint8)
        canvas[...] = int(pre.pad_value)
        interp = shrink_interpolation(r, letterbox=True)
        # Ultralytics centres the image (its pad split as round(pad/2 -/+ 0.1)); YOLOX pads
        # bottom/right only
        top, left = (
            (round((th - nh) / 2 - 0.1), round((tw - nw) / 2 - 0.1)) if pre.pad_center else (0, 0)
        )
        canvas[top : top + nh, left : left + nw] = cv2.resize(bgr, (nw, nh), interpolation=interp)
        return canvas, Geometry(r, r, -float(left), -float(top), w, h, tw, th)
    if pre.resize == "stretch":
        interp = shrink_interpolation(min(tw / w, th / h))
        out = cv2.resize(bgr, (tw, th), interpolation=interp)
        return out, Geometry(tw / w, th / h, 0.0, 0.0, w, h, tw, th)
    # resize_crop and short_side_crop: scale to cover the target, then centre-crop.
    s = max(th / h, tw / w) / (pre.crop_fraction if pre.resize == "resize_crop" else 1.0)
    nh, nw = max(th, round(h * s)), max(tw, round(w * s))
    interp = shrink_interpolation(s)
    resized = cv2.resize(bgr, (nw, nh), interpolation=interp)
    y0, x0 = (nh - th) // 2, (nw - tw) // 2
    return resized[y0 : y0 + th, x0 : x0 + tw], Geometry(s, s, float(x0), float(y0), w, h, tw, th)


class Preprocessor:
    """Callable turning BGR uint8 frames into normalised float32 tensors for one `Preprocess`."""

    def __init__(self, pre: Preprocess, fused: bool = False) -> None:
        """`fused`: the graph normalises itself (graph_fusion); emit resized uint8 frames in the
        model's layout and channel order."""
        pre.validate()
        self.pre = pre
        # a uint8 model takes the resized frame as it is: the fused path's output, unscaled
        self.raw_uint8 = pre.input_dtype == "uint8"
        self.fused = fused or self.raw_uint8
        std = np.asarray(pre.std, dtype=np.float32)
        self._a = (pre.scale / std).astype(np.float32)  # value = pixel * a + b
        self._b = (-np.asarray(pre.mean, dtype=np.float32) / std).astype(np.float32)
        self._identity = bool(np.all(self._a == 1.0) and np.all(self._b == 0.0))
        self._order = [2, 1, 0] if pre.color == "RGB" else [0, 1, 2]
        self._ring: dict[tuple[int, ...], list[np.ndarray]] = {}
        self._next = 0
        self._canvas: np.ndarray | None = None

    def _buffer(self, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        ring = self._ring.get(shape)
        if ring is None:
            ring = [np.empty(shape, dtype=dtype) for _ in range(RING)]
            self._ring[shape] = ring
        self._next = (self._next + 1) % RING
        return ring[self._next]

    def normalise(self, img: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write `img` (HWC uint8 BGR) into `out` ([C,H,W] or [H,W,C] float32 view)."""
        if self.pre.layout == "NCHW":
            for c, src in enumerate(self._order):
                channel = img[:, :, src]
                if self._identity:
                    np.copyto(out[c], channel, casting="unsafe")
                else:
                    np.multiply(channel, self._a[c], out=out[c], casting="unsafe")
                    out[c] += self._b[c]
        else:
            view = img[:, :, self._order] if self._order[0] == 2 else img
            np.multiply(view, self._a, out=out, casting="unsafe")
            out += self._b
        return out

    def __call__(self, bgr: np.ndarray, own: bool = False) -> tuple[np.ndarray, Geometry]:
        """One frame -> ([1, ...] tensor, geometry for mapping back). The tensor comes from a
        ring of RING buffers, or is a new array with `own` (for pipelines that keep more
        tensors in flight than the ring holds, e.g. preprocessing on the decode thread)."""
        img, geo = resize_frame(bgr, self.pre, self._canvas)
        if self.pre.resize == "letterbox":
            self._canvas = img
        if self.fused:
            # uint8 in the model's layout and channel order: the transpose costs little here
            # (on the decode thread) and a kernel launch per frame on the GPU
            nchw = self.pre.layout == "NCHW"
            shape = (1, 3, geo.in_h, geo.in_w) if nchw else (1, geo.in_h, geo.in_w, 3)
            out = np.empty(shape, np.uint8) if own else self._buffer(shape, np.uint8)
            if nchw:
                planes: list = [None] * 3
                for c, src in enumerate(self._order):
                    planes[src] = out[0, c]
                # cv2.split writes into the given contiguous planes: 6x faster than numpy's
                # strided copies (0.03 against 0.17 ms at 416x416)
                got = cv2.split(img, planes)
                for g, plane in zip(got, planes):
                    if not np.may_share_memory(g, plane):  # an OpenCV that returned copies
                        np.copyto(plane, g)
            else:
                np.copyto(out[0], img[:, :, self._order] if self._order[0] == 2 else img)
            return out, geo
        shape = (
            (1, 3, geo.in_h, geo.in_w) if self.pre.layout == "NCHW" else (1, geo.in_h, geo.in_w, 3)
        )
        out = np.empty(shape, np.float32) if own else self._buffer(shape)
        self.normalise(img, out[0])
        return out, geo

    def batch(self, frames: list[np.ndarray]) -> tuple[np.ndarray, list[Geometry]]:
        """Several frames of any size into one new [N, ...] tensor (all at the fixed size)."""
        th, tw = self.pre.size
        shape = (len(frames), 3, th, tw) if self.pre.layout == "NCHW" else (len(frames), th, tw, 3)
        out = np.empty(shape, dtype=np.uint8 if self.raw_uint8 else np.float32)
        geos = []
        fixed = replace(self.pre, short_side=None)  # a batch needs one shape: the chosen size
        for i, frame in enumerate(frames):
            img, geo = resize_frame(frame, fixed)
            if self.raw_uint8:
                hwc = img[:, :, self._order]
                out[i] = hwc.transpose(2, 0, 1) if self.pre.layout == "NCHW" else hwc
            else:
                self.normalise(img, out[i])
            geos.append(geo)
        return out, geos
