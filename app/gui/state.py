"""Shared application state: the current model spec and its workspace, as Qt signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.backends.tensorrt.workspace_engines import built_variants, engine_for_variant
from app.core import defaults
from app.core.errors import UserError
from app.core.model.overrides import changed_fields, corrected_spec, save_overrides
from app.core.model.spec import ModelSpec
from app.core.model.staleness import mark_stale, stale_variants
from app.core.model.workspace import Workspace, default_root
from app.core.model.workspace_index import find_workspace, workspace_holds


class AppState(QObject):
    """What every panel shares; panels subscribe to its signals instead of to each other."""

    spec_changed = Signal(object)  # ModelSpec or None
    model_changed = Signal(object)  # another model (not an edit): before spec_changed
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
        self.corrections: dict[str, Any] = {}  # the fields the user set (workspace's user.json)
        self.allow_stale = False  # the user chose to use stale variants (Variants tab)
        # One source for Live and Compare: the user chose it once, both views play it.
        self.source = ""
        # First connection, so it runs before any panel re-reads: one check of the variant
        # files (their sha256) per change, not one per panel, on the GUI thread.
        self.variants_changed.connect(self._forget_variants)

    def _forget_variants(self) -> None:
        self._metas = None

    def set_spec(self, spec: ModelSpec | None) -> None:
        other_model = (spec.sha256 if spec else None) != (self.spec.sha256 if self.spec else None)
        self.spec = spec
        self._workspace = None
        self._metas = None
        if other_model:
            self.allow_stale = False  # a choice made for the old model's variants
            self.model_changed.emit(spec)
        if spec is not None:
            self.message.emit(f"model: {spec.path} ({spec.task})")
        self.spec_changed.emit(spec)

    def open_spec(self, spec: ModelSpec) -> None:
        """A freshly inspected model: its workspace's corrections (found by the model's hash)
        go on top of the guess, and a model that moved says so, before every panel sees it."""
        root = self._workspace_root_of(spec)
        try:
            spec, self.corrections = corrected_spec(spec, root)
        except UserError as exc:  # a damaged user.json: the model still opens, and says so
            spec.problems.append(f"{exc} (your corrections were not applied)")
            self.corrections = {}
        if root is not None:
            recorded = ModelSpec.load(Path(root) / "spec.json").path
            if Path(recorded) != Path(spec.path):
                spec.notes.append(
                    f"the model moved from {recorded}; its workspace {root} follows it"
                )
        self.set_spec(spec)

    def _workspace_root_of(self, spec: ModelSpec) -> Path | None:
        if self.workspace_root is not None:
            held = workspace_holds(self.workspace_root, spec.sha256)
            return self.workspace_root if held else None
        return find_workspace(spec.sha256, default_root())

    def correct(self, edited: ModelSpec) -> None:
        """The user edited the spec (Model tab): the changed fields join the corrections kept in
        the workspace's user.json, so re-opening the model keeps them."""
        current = self.require_spec()
        self.corrections = {**self.corrections, **changed_fields(current, edited)}
        self.set_spec(edited)
        if self.corrections:
            save_overrides(self.workspace().root, self.corrections)

    def check_stale(self, names: list[str]) -> None:
        """UserError naming each stale variant of `names` unless the user chose to use them."""
        if self.allow_stale or not [n for n in names if n != "fp32"]:
            return
        stale = stale_variants(self.workspace(), names)
        if stale:
            what = "; ".join(f"'{n}' {why}" for n, why in stale.items())
            raise UserError(
                f"stale variant {what}. Rebuild it in the Variants tab (Build / rebuild), or "
                "tick 'Use stale variants' there to use it anyway"
            )

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
            try:
                self._workspace = Workspace.for_model(spec, self.workspace_root)
            except OSError as exc:  # a full disk, a read-only folder: said in the panel
                where = exc.filename or self.workspace_root or "the workspace folder"
                raise UserError(
                    f"{where}: cannot use this workspace folder ({exc.strerror or exc}); free "
                    "some space, fix its permissions or choose another folder"
                ) from exc
        return self._workspace

    def variant_metas(self) -> list[dict[str, Any]]:
        """The workspace's variant records (cached until `variants_changed`); may raise
        UserError when the workspace cannot be opened."""
        if self._metas is None:
            self._metas = mark_stale(self.workspace(), self.workspace().variants())
        return [dict(m) for m in self._metas]

    def variant_names(self) -> list[str]:
        """fp32 (the model itself) plus every valid variant recorded in the workspace, in the
        order the CLI lists them (`defaults.VARIANT_ORDER` first)."""
        if self.spec is None:
            return []
        names = ["fp32"]
        try:
            names += [v["name"] for v in self.variant_metas() if v["valid"] and v["name"] != "fp32"]
            names += [n for n in built_variants(self.workspace()) if n not in names]  # engines
        except (UserError, OSError):
            pass
        order = {n: i for i, n in enumerate(defaults.VARIANT_ORDER)}
        return sorted(names, key=lambda n: order.get(n, len(order)))  # stable: others as found

    def variant_path(self, name: str, backend: str = "") -> str:
        """The ONNX file of a variant: fp32 is the model itself, others come from the workspace;
        on the `tensorrt` backend the variant's built engine (UserError saying how to build)."""
        spec = self.require_spec()
        if backend == "tensorrt":
            self.check_stale([name])
            return str(engine_for_variant(self.workspace(), name))
        if name == "fp32":
            return spec.path
        self.check_stale([name])
        return str(self.workspace().require_variant(name))

    def describe(self) -> dict[str, Any]:
        return {"model": self.spec.path if self.spec else None}
