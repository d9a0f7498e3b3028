"""Quantize faults from the hostile test (issue 18, items 6 and 9): a variant's record hashes the
graph this run wrote, not whatever another run renamed onto the same name meanwhile; the named
working copy lives in the workspace (cleaned with its leftovers), not in /tmp."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from app.core.quant.calibration import calibrate, latest_calibration
from app.core.quant.quantize import make_int8, quantize
from tests.conftest import IMAGES, RESNET8, needs_assets
from tests.reliability.helpers import copy_images, copy_model_folder

pytestmark = needs_assets
CIFAR = IMAGES / "cifar10-test500"


@pytest.fixture
def ws(tmp_path) -> Workspace:
    for cls in ("cat", "ship"):
        copy_images(sorted((CIFAR / cls).glob("*.jpg"))[:3], tmp_path / "images" / cls)
    model = copy_model_folder(RESNET8, tmp_path / "model")
    ws = Workspace.for_model(inspect_model(model), tmp_path / "ws")
    calibrate(ws, tmp_path / "images", method="minmax")
    return ws


def test_record_keeps_the_hash_of_the_graph_this_run_wrote(ws):
    source = Path(ws.spec().path)
    ranges = latest_calibration(ws) / "ranges.json"
    graph = ws.variant_path("int8")
    details = make_int8(source, ranges, graph, "ort-cpu", None)
    # another quantize (other calibration) renames its graph onto the same name meanwhile
    shutil.copy(source, graph)
    ws.record_variant("int8", {"precision": "int8", "target": "ort-cpu", **details})
    # the old code hashed the file at the final name and called this mismatch valid
    assert not ws.valid_variant("int8")
    rebuilt = quantize(ws, precisions=["int8"])[0]
    assert rebuilt["reused"] is False and ws.valid_variant("int8")


def test_the_working_copy_is_made_in_the_workspace_not_in_tmp(ws, monkeypatch):
    seen: list[str] = []
    real = tempfile.TemporaryDirectory

    def recording(*args, **kwargs):  # records where the app asks for its working folders
        if str(kwargs.get("prefix", "")).startswith("."):  # ours; ONNX Runtime's own use /tmp
            seen.append(str(kwargs.get("dir")))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryDirectory", recording)
    quantize(ws, precisions=["int8"])
    # graph preparation and the named copy (the old code made both in /tmp), and the same two
    # plus its own folder for the sensitive-block measurement's fully quantized graph
    variants = ws.variant_path("int8").parent
    assert len(seen) == 5 and all(Path(d).is_relative_to(variants) for d in seen), seen
    assert not [p for p in ws.variant_path("int8").parent.iterdir() if p.name.endswith(".part")]
