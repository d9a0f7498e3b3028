"""`Workspace`: one folder per model holding its spec, calibration, variants, engines and results.

Layout (all writes atomic; every reused file is checked against the key it was made with):

    <root>/spec.json                      the ModelSpec every step uses
    <root>/calibration/<key>/             ranges, calibration.{flatbuffers,cache,json}, meta.json
    <root>/variants/<name>.onnx           fp32 (copy of the source), fp16, int8 graphs ...
    <root>/variants/<name>.json           how the variant was made, with its key and file sha256
    <root>/engines/                       TensorRT engines, engine and timing caches
    <root>/results/                       evaluate-<backend>.json, bench.json, precision analyses
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.atomic import write_json
from app.core.errors import UserError
from app.core.model.files import file_sha256, known_sha256
from app.core.model.spec import DECODERS, ModelSpec
from app.core.model.workspace_index import find_workspace, remember_workspace
from app.core.safe_json import load_json

log = logging.getLogger(__name__)
# A hidden `.part` file or folder (an atomic write in progress) older than this was left by a
# killed job: the app's longest single write (quantize_static into its `.part`) takes about a
# minute on the largest vision models, so a running job's are never this old.
LEFTOVER_AGE_S = 10 * 60
_PID_PART = re.compile(r"\.(\d+)\.part\.[A-Za-z0-9]+$")  # `.NAME.PID.part.mp4`, not atomic.py's


def default_root() -> Path:
    """Where workspaces live unless the user chooses: the user data dir (platformdirs)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("int8-studio", appauthor=False)) / "workspaces"


def cache_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (model hash, preprocessing, settings...)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def safe_component(name: str) -> str:
    """A single path component made from user or model text; cannot escape its folder."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return (cleaned or "model")[:80]


@dataclass
class Workspace:
    root: Path
    moved_from: str | None = None  # the model's old path, when it was found at a new one

    @classmethod
    def for_model(cls, spec: ModelSpec, root: str | Path | None = None) -> Workspace:
        """Create (or reopen) the workspace for this model; saves the spec if it is new."""
        if root is None:  # found by the model's content first: a moved model keeps its own
            root = find_workspace(spec.sha256, default_root()) or (
                default_root() / f"{safe_component(Path(spec.path).stem)}-{spec.sha256[:8]}"
            )
        ws = cls(Path(root))
        ws.root.mkdir(parents=True, exist_ok=True)
        ws.clean_leftovers()
        existing = ws.root / "spec.json"
        if existing.exists():
            old = ModelSpec.load(existing)
            if old.sha256 != spec.sha256:
                raise UserError(
                    f"{ws.root} belongs to another model ({Path(old.path).name}); choose another "
                    "workspace folder"
                )
            ws.moved_from = old.path if Path(old.path) != Path(spec.path) else None
            if (old.preprocess, old.postprocess, old.labels, old.path) != (
                spec.preprocess,
                spec.postprocess,
                spec.labels,
                spec.path,
            ):
                spec.save(existing)  # corrected or moved: later keys and steps follow it
        else:
            spec.save(existing)
        remember_workspace(spec.sha256, ws.root, default_root())
        return ws

    @classmethod
    def open(cls, root: str | Path) -> Workspace:
        ws = cls(Path(root))
        if not (ws.root / "spec.json").is_file():
            raise UserError(
                f"{root}: not an INT8 Studio workspace (no spec.json); run `calibrate` first"
            )
        ws.clean_leftovers()
        return ws

    def clean_leftovers(self, max_age_s: float = LEFTOVER_AGE_S) -> list[Path]:
        """Remove hidden `.part` files and folders that killed jobs left (see LEFTOVER_AGE_S);
        a running job's are kept. Returns what was removed; a read-only workspace is left be."""
        return remove_leftovers(self.root, max_age_s)

    def check_writable(self) -> None:
        """Refuse, before any work, a workspace this process cannot write in (read-only disk,
        immutable folder, no permission)."""
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".part", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise UserError(
                f"{self.root}: cannot write in this workspace ({exc.strerror}); make it "
                "writable or copy it to a writable folder and use that"
            ) from exc

    # paths ---------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A path to write inside the workspace (its folder is made); refuses anything that
        would leave it."""
        target = self.root.joinpath(*parts).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise UserError(f"refusing to write outside the workspace: {'/'.join(parts)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def spec_path(self) -> Path:
        return self.root / "spec.json"

    def _read_path(self, *parts: str) -> Path:
        """A path to read inside the workspace: nothing made, no write rule applied (a graph
        that is a link is read and checked against its recorded hash like any other)."""
        return self.root.joinpath(*parts)

    def spec(self) -> ModelSpec:
        """The workspace's spec, checked: a hand-edited value the app cannot run, or a model
        file changed since the spec was made from it, is refused here, before any work."""
        spec = ModelSpec.load(self.spec_path)
        try:
            spec.preprocess.validate()
        except UserError as exc:
            raise UserError(f"{self.spec_path}: {exc}; fix it or delete it to re-inspect") from exc
        if spec.postprocess.decoder not in DECODERS:
            raise UserError(
                f"{self.spec_path}: unknown decoder '{spec.postprocess.decoder}' (known: "
                f"{', '.join(DECODERS)}); fix it or delete it to re-inspect"
            )
        _check_model_unchanged(spec, self.root)
        return spec

    def variant_path(self, name: str) -> Path:
        return self.path("variants", f"{safe_component(name)}.onnx")

    def variant_meta_path(self, name: str) -> Path:
        return self.path("variants", f"{safe_component(name)}.json")

    def _variant_read_paths(self, name: str) -> tuple[Path, Path]:
        """(graph, record) of a variant, for reading."""
        stem = safe_component(name)
        return self._read_path("variants", f"{stem}.onnx"), self._read_path(
            "variants", f"{stem}.json"
        )

    # results -------------------------------------------------------------------------------
    @property
    def results_dir(self) -> Path:
        """Where evaluation and benchmark JSON go (not created: reading must not write)."""
        return self.root / "results"

    def evaluation_path(self, backend: str) -> Path:
        """The evaluation report of one backend (`evaluate` and the Results panel write it)."""
        return self.path("results", f"evaluate-{safe_component(backend)}.json")

    def bench_path(self) -> Path:
        """The benchmark report (`bench` writes it; the Results panel merges it)."""
        return self.path("results", "bench.json")

    def result_files(self) -> list[Path]:
        """The evaluation reports, newest first, then the benchmark when there is one."""
        folder = self.results_dir
        if not folder.is_dir():
            return []
        reports = sorted(
            folder.glob("evaluate-*.json"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        bench = folder / "bench.json"
        return reports + ([bench] if bench.is_file() else [])

    # variants ------------------------------------------------------------------------------
    def calibration_images(self, key: str) -> set[Path]:
        """The images calibration `key` of this workspace used (resolved paths); empty when its
        record is missing or unreadable (for warnings only: calibration checks its own files)."""
        if not key or Path(key).name != key:
            return set()
        try:
            used = load_json(self.root / "calibration" / key / "meta.json").get("images_used")
        except (OSError, ValueError, AttributeError):
            return set()
        return {Path(p).resolve() for p in used or [] if isinstance(p, str)}

    def record_variant(self, name: str, meta: dict[str, Any]) -> None:
        """Write a variant's metadata (after its graph), with the graph's and the model's sha256
        for checking. A builder passes the sha256 of the file it wrote (hashed before its rename),
        so a graph another job renamed onto the same name since is not recorded as this one."""
        meta = dict(
            meta,
            name=name,
            sha256=meta.get("sha256") or file_sha256(self.variant_path(name)),
            model_sha256=self.spec().sha256,
        )
        write_json(self.variant_meta_path(name), meta)

    def variant_meta(self, name: str) -> dict[str, Any] | None:
        """The variant's record, or None when it is missing or not a well-formed record."""
        try:
            return load_json(self._variant_read_paths(name)[1])
        except (OSError, ValueError):
            return None

    def variant_sha256(self, name: str) -> str | None:
        """The recorded hash of the graph a variant name stands for (fp32: the model's own),
        so reports made at different times can tell whether they measured the same file."""
        if name == "fp32":
            return self.spec().sha256
        sha = (self.variant_meta(name) or {}).get("sha256")
        return sha if isinstance(sha, str) else None

    def valid_variant(self, name: str, key: str | None = None) -> bool:
        """True when the variant's graph exists, matches its recorded sha256 and (if given) key."""
        meta = self.variant_meta(name)
        graph = self._variant_read_paths(name)[0]
        if not meta or not graph.is_file():
            return False
        if key is not None and meta.get("key") != key:
            return False
        if meta.get("model_sha256") != self.spec().sha256:
            return False  # made from another model (a copied or reused workspace)
        return file_sha256(graph) == meta.get("sha256")

    def variants(self) -> list[dict[str, Any]]:
        """Metadata of every recorded variant, valid or not (`valid` says)."""
        out = []
        folder = self.root / "variants"
        for meta_file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            name = meta_file.stem
            meta = self.variant_meta(name) or {"name": name}
            meta["valid"] = self.valid_variant(name)
            graph = self._variant_read_paths(name)[0]
            meta["bytes"] = graph.stat().st_size if graph.is_file() else 0
            out.append(meta)
        return out

    def require_variant(self, name: str) -> Path:
        meta = self.variant_meta(name)
        if meta and meta.get("model_sha256") not in (None, self.spec().sha256):
            raise UserError(
                f"variant '{name}' in {self.root} was made from another model; run "
                "`int8-studio quantize` to rebuild it for this one"
            )
        if not self.valid_variant(name):
            valid = [v["name"] for v in self.variants() if v["valid"]]
            if meta is None and not self.variant_path(name).exists():  # never built: a typo?
                raise UserError(
                    f"variant '{name}' is not in {self.root} (have: "
                    f"{', '.join(['fp32', *valid])}); check the name, or build it with "
                    "`int8-studio quantize`"
                )
            have = ", ".join(valid) or "none"
            raise UserError(
                f"variant '{name}' is missing or damaged in {self.root} (have: {have}); "
                "run `int8-studio quantize` to (re)build it"
            )
        return self._variant_read_paths(name)[0]


def _check_model_unchanged(spec: ModelSpec, root: Path) -> None:
    """The model file at the spec's path must still be the one the spec was made from (its
    SHA-256, memoised by path, size, times and inode). A missing file is left to the step that
    needs it (the workspace may hold its own fp32 copy)."""
    path = Path(spec.path)
    try:
        st = path.stat()
    except OSError:
        return
    try:
        digest = known_sha256(path, st)
    except OSError:
        return
    if digest != spec.sha256:
        raise UserError(
            f"{path} has changed since the workspace {root} was made from it (SHA-256 differs); "
            "restore the original file, or re-open the changed model (`int8-studio calibrate "
            "--model` with a new workspace) and recalibrate"
        )


def remove_leftovers(
    folder: Path, max_age_s: float = LEFTOVER_AGE_S, *, only_pid_named: bool = False
) -> list[Path]:
    """Remove hidden `.part` files and folders under `folder` whose writer is gone: the PID in
    the name (`.NAME.PID.part.mp4`) is not running, or (no PID) they are older than
    `max_age_s`. With `only_pid_named` (a user's --output folder, where the app owns only the
    files it named) just those, in `folder` itself. Links are not followed; what cannot be
    removed is left."""
    removed: list[Path] = []
    now = time.time()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            if not (name.startswith(".") and ".part" in name):
                continue
            if only_pid_named and not _PID_PART.search(name):
                continue
            path = Path(dirpath) / name
            if not _abandoned(path, name, now, max_age_s):
                continue
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as exc:
                log.debug("could not remove leftover %s: %s", path, exc)
                continue
            removed.append(path)
            log.info("removed %s (left by an interrupted job)", path)
        dirnames[:] = [
            d for d in dirnames if not only_pid_named and not (d.startswith(".") and ".part" in d)
        ]
    return removed


def _abandoned(path: Path, name: str, now: float, max_age_s: float) -> bool:
    match = _PID_PART.search(name)
    if match:
        pid = int(match.group(1))
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # another user's running process
        return False
    try:
        return now - path.lstat().st_mtime > max_age_s
    except OSError:
        return False
