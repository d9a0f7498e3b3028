"""`fp32-prep`: the FP32 model with the rewrite the app's INT8 and FP16 variants get and that no
runtime makes on its own, and nothing else: a Focus stem's slices folded into its convolution
(`space_to_depth`). Same weights, same arithmetic, same outputs to float rounding.

Why a variant of its own: on ONNX Runtime's CPU provider the fold alone made YOLOX-Nano run at
0.90-0.94x FP32's latency on an AMD EPYC (Zen 4, 2 cores) and 0.83-0.90x on an Intel Xeon with
AVX512-VNNI, where its INT8 graph ran at 1.01-1.08x (issue 17). Where INT8 does not pay, the
fastest variant at FP32's accuracy is this one, and `evaluate`, `bench` and the Results panel
recommend it when it is measured faster. The other preparation steps INT8 gets (constants and
pads folded, `prepare`) are left out: ONNX Runtime makes them itself when it loads a model
(EfficientNet-Lite0 prepared that way ran at 1.00x), so they would only change the file.

A model with nothing to fold gets no `fp32-prep` (it would be the FP32 graph again); the build
says so. The written graph is run once beside the model on the same input (a synthetic scene
preprocessed as the model wants it) and refused if its outputs differ beyond float rounding: an
exact variant has to be exact. Values that are whole numbers in both graphs (class ids) are left
out of the comparison: an id flips where two classes tie within float rounding, which no fold can
avoid (the tutorial-format YOLOX's argmax column did on 0.1% of its values, up to 49 -> 0, and
the variant was refused for it before).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from app.core.atomic import atomic_path
from app.core.model.files import file_sha256
from app.core.model.spec import Preprocess
from app.core.quant.graph_rules import name_nodes
from app.core.quant.space_to_depth import fold_space_to_depth

PREPARED_VERSION = 1
# An output element differs when it moved by more than this share of the output's own largest
# magnitude (at least 1): float rounding of a reordered sum is ~1e-6.
MAX_RELATIVE_DIFF = 1e-4
# and the graph is refused when more than this share of the output values compared differ (a
# wrong fold moves nearly all of them)
MAX_DIFFERING_SHARE = 1e-3


class NotPrepared(Exception):
    """No `fp32-prep` for this model: nothing to fold, or the folded graph's outputs differ from
    the model's (a fold this code got wrong, never written); the message says which."""


def make_prepared_fp32(
    source: Path, out_path: Path, pre: Preprocess | None = None
) -> dict[str, Any]:
    """Write `fp32-prep` of the model at `source` to `out_path` (atomically) and return its
    record; NotPrepared when it is not made (see the class). `pre`: the model's preprocessing,
    which makes the check's input (else random pixels 0..255)."""
    model, folded = fold_space_to_depth(name_nodes(onnx.load(str(source))))
    if not folded:
        raise NotPrepared(
            "nothing to fold (no Focus stem); ONNX Runtime makes the other preparation rewrites "
            "itself when it loads the model, so it would run as fp32 does"
        )
    with atomic_path(out_path) as part:
        onnx.save(model, str(part))
        onnx.checker.check_model(str(part))
        try:
            share, worst = output_difference(source, part, check_feed(source, pre))
        except Exception as exc:  # ONNX Runtime raises assorted types; the model is not ours
            first = str(exc).strip().splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise NotPrepared(
                f"the folded graph could not be checked against the model ({first}); use fp32"
            ) from exc
        if share > MAX_DIFFERING_SHARE:
            raise NotPrepared(
                f"folding {', '.join(folded)} changed {share:.1%} of the output values (by up to "
                f"{worst:.2g} of their range); not written (please report it with the model); "
                "use fp32"
            )
        written = file_sha256(part)
    return {
        "sha256": written,
        "space_to_depth_folded": folded,
        "preparation": {"prepared": True, "space_to_depth_folded": folded},
        "max_relative_diff": float(worst),
        "differing_share": float(share),
    }


def check_feed(source: Path, pre: Preprocess | None) -> np.ndarray:
    """The check's input: the textured synthetic scene preprocessed by `pre`, else random pixels
    for the model's input shape."""
    if pre is None:
        from app.core.quant.speed import synthetic_feed

        return synthetic_feed(source, None)
    from app.core.frames.preprocess import Preprocessor
    from app.core.model.probing import synthetic_frames

    return Preprocessor(pre)(synthetic_frames()[-1], own=True)[0]


def output_difference(reference: Path, candidate: Path, feed: np.ndarray) -> tuple[float, float]:
    """(share of output values that differ, largest difference) between two graphs run on
    `feed`, each difference relative to its reference output's largest magnitude (at least 1);
    values whole in both graphs (class ids, which flip on ties) are not compared."""
    from app.core.quant.speed import cpu_session

    runs = []
    for path in (reference, candidate):
        session = cpu_session(path, 1)
        runs.append(session.run(None, {session.get_inputs()[0].name: feed}))
    worst, differing, total = 0.0, 0, 0
    for ref, got in zip(*runs, strict=True):
        ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
        if ref.shape != got.shape:
            return 1.0, float("inf")
        compared = ~((ref == np.rint(ref)) & (got == np.rint(got)))
        if compared.any():
            moved = np.abs(ref - got)[compared] / max(1.0, float(np.abs(ref).max()))
            worst = max(worst, float(moved.max()))
            differing += int((moved > MAX_RELATIVE_DIFF).sum())
            total += moved.size
    return (differing / total if total else 0.0), worst
