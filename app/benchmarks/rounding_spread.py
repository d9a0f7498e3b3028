"""The issue-17 protocol's noise floor for INT8: the default INT8 graphs and copies of them whose
float convolution weights are scaled by 1 + 1e-6 N(0, 1), a change at the level of float
rounding that no recipe decides, scored on `int8_unseen`'s folders in one run. The spread of one
recipe's figures over those copies is how far apart two recipes must be before the protocol
tells them apart (INT8 roundings near a half step flip, and the flips travel); the bootstrap
intervals `evaluate` prints cover only the choice of images. Prints a table, writes JSON.

    python -m app.benchmarks.rounding_spread --assets ../shared/assets --workdir W [--copies 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from app.benchmarks import int8_unseen
from app.cli.main import setup_logging
from app.cli.output import save_json, table
from app.core.eval.bench import device_info
from app.core.model.files import file_sha256
from app.core.model.workspace import Workspace

log = logging.getLogger("rounding_spread")
SCALE = 1e-6  # relative: float32 rounding is ~6e-8, a sum over a conv window reorders ~1e-6
BASES = ["int8", "int8-trt"]


def float_conv_weights(model: onnx.ModelProto) -> list[str]:
    """Initializers a Conv reads directly as its float weight (not through a DequantizeLinear):
    the convolutions the recipe kept float."""
    inits = {i.name: i for i in model.graph.initializer}
    return sorted(
        {
            n.input[1]
            for n in model.graph.node
            if n.op_type == "Conv"
            and len(n.input) > 1
            and n.input[1] in inits
            and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT
        }
    )


def perturbed_copy(ws: Workspace, base: str, seed: int, scale: float = SCALE) -> str:
    """`<base>-p<seed>`: `base`'s graph with every float conv weight scaled by
    1 + scale * N(0, 1), registered in `ws` with `base`'s record; its name."""
    model = onnx.load(str(ws.variant_path(base)))
    names = set(float_conv_weights(model))
    if not names:
        raise SystemExit(f"{base}: no float convolution weight to perturb")
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        if init.name in names:
            w = numpy_helper.to_array(init)
            noisy = w * (1 + scale * rng.standard_normal(w.shape))
            init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    name = f"{base}-p{seed}"
    path = ws.variant_path(name)
    onnx.save(model, str(path))
    meta = {k: v for k, v in (ws.variant_meta(base) or {}).items() if k != "key"}
    ws.record_variant(name, {**meta, "sha256": file_sha256(path), "perturbed": [scale, seed]})
    return name


def spread(summary: dict[str, dict[str, Any]], bases: list[str], copies: int) -> list[tuple]:
    """Per base: min .. max and standard deviation of each figure over it and its copies."""
    rows = []
    figures = [
        ("unseen mAP vs fp32", "unseen", "diff"),
        ("photo agreement", "unseen", "agreement"),
        ("video agreement", "videos", "value"),
        ("pool agreement", "pool", "value"),
    ]
    for base in bases:
        names = [base] + [f"{base}-p{s}" for s in range(1, copies + 1)]
        for label, role, key in figures:
            values = [summary[n][role][key] for n in names if role in summary[n]]
            if len(values) > 1:
                sd = round(statistics.stdev(values), 2)
                rows.append((base, label, min(values), max(values), sd))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--workdir", help="keep workspaces and frames here (shared with int8_unseen)")
    ap.add_argument("--copies", type=int, default=3, help="perturbed copies of each INT8 graph")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    setup_logging(False)
    assets, t0 = Path(args.assets), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        folders = int8_unseen.protocol_folders(assets, work)
        ws, _ = int8_unseen.yolox_workspace(assets, work)
        names = ["fp32", *BASES]
        names += [perturbed_copy(ws, b, s) for b in BASES for s in range(1, args.copies + 1)]
        results = int8_unseen.score(ws, names, folders, lambda r: log.info("scoring on %s", r))
        summary = int8_unseen.summary(results)
        notes = int8_unseen.variant_notes(ws, names)
    report = {
        "device": device_info(),
        "backend": "ort-cpu",
        "protocol": int8_unseen.FOLDERS,
        "variants": names,
        "scale": SCALE,
        "images": {role: r["images"] for role, r in results.items()},
        "variant_meta": notes,
        "summary": summary,
        "spread": spread(summary, BASES, args.copies),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    save_json(args.json_out, report)
    int8_unseen.print_report(report)
    print(f"\nspread over each INT8 graph and its {args.copies} copies (x (1 + {SCALE} N(0,1))):")
    print(table(["variant", "figure", "min", "max", "sd"], report["spread"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
