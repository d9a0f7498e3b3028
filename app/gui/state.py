"""Shared application state: the current model spec and its workspace, as Qt signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.backends.tensorrt.workspace_engines import built_variants, engine_for_variant
from app.core.errors import UserError
from app.core.model.spec import ModelSpec
from app.core.model.workspace import Workspace


class AppState(QObject):
    """What every panel shares; panels subscribe to its signals instead of to each other."""

    spec_changed = Signal(object)  # ModelSpec or None
    variants_changed = Signal()
    runner_info = Signal(dict)  # {backend, provider, fallback} of the runner that is running
    message = Signal(str)  # a line for the log view
    source_changed = Signal(str)  # the video, image, folder or camera the views play

    def __init__(self, workspace_root: str | Path | None = None) -> None:
        super().__init__()
        self.spec: ModelSpec | None = None
        self.workspace_root = Path(workspace_root) if workspace_root else None
        self._workspace: Workspace | None = None
        self._metas: list[dict[str, Any]] | None = None
        # One source for Live and Compare: the user chose it once, both views play it.
        self.source = ""
        # First connection, so it runs before any panel re-reads: one check of the variant
        # files (their sha256) per change, not one per panel, on the GUI thread.
        self.variants_changed.connect(self._forget_variants)

    def _forget_variants(self) -> None:
        self._metas = None

    def set_spec(self, spec: ModelSpec | None) -> None:
        self.spec = spec
        self._workspace = None
        self._metas = None
        if spec is not None:
            self.message.emit(f"model: {spec.path} ({spec.task})")
        self.spec_changed.emit(spec)

    def set_source(self, source: str) -> None:
        """The source every stream view shows; `source_changed` only when it changes."""
        if source != self.source:
            self.source = source
            self.source_changed.emit(source)

    def require_spec(self) -> ModelSpec:
        if self.spec is None:
            raise UserError("open a model first (File > Open model)")
        return self.spec

    def workspace(self) -> Workspace:
        """The current model's workspace (created on first use; saves the spec as edited)."""
        spec = self.require_spec()
        if self._workspace is None:
            self._workspace = Workspace.for_model(spec, self.workspace_root)
        return self._workspace

    def variant_metas(self) -> list[dict[str, Any]]:
        """The workspace's variant records (cached until `variants_changed`); may raise
        UserError when the workspace cannot be opened."""
        if self._metas is None:
            self._metas = [dict(m) for m in self.workspace().variants()]
        return [dict(m) for m in self._metas]

    def variant_names(self) -> list[str]:
        """fp32 (the model itself) plus every valid variant recorded in the workspace."""
        if self.spec is None:
            return []
        names = ["fp32"]
        try:
            names += [v["name"] for v in self.variant_metas() if v["valid"] and v["name"] != "fp32"]
            names += [n for n in built_variants(self.workspace()) if n not in names]  # engines
        except (UserError, OSError):
            pass
        return names

    def variant_path(self, name: str, backend: str = "") -> str:
        """The ONNX file of a variant: fp32 is the model itself, others come from the workspace;
        on the `tensorrt` backend the variant's built engine (UserError saying how to build)."""
        spec = self.require_spec()
        if backend == "tensorrt":
            return str(engine_for_variant(self.workspace(), name))
        if name == "fp32":
            return spec.path
        return str(self.workspace().require_variant(name))

    def describe(self) -> dict[str, Any]:
        return {"model": self.spec.path if self.spec else None}
