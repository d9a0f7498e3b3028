"""Model files on disk: content hash, the `.onnx` inside a checkpoint folder, label lists."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from app.core.errors import UserError


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# (path, size, mtime, ctime, inode) -> SHA-256 of the files this process has hashed: hashing an
# unchanged file again costs one stat. The ctime changes on every write, even one that puts the
# size and mtime back.
_HASHES: dict[tuple[str, int, int, int, int], str] = {}


def known_sha256(path: Path, st: os.stat_result | None = None) -> str:
    """`file_sha256` of a regular file (a FIFO would block), memoised by path, size, times and
    inode (pass `st` when already taken); OSError when it cannot be read."""
    st = st or os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    digest = _HASHES.get(key)
    if digest is None:
        digest = _HASHES[key] = file_sha256(path)
    return digest


def find_model_file(path: Path) -> Path:
    """The `.onnx` file for a file or checkpoint-folder argument."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_dir():
        models = sorted(path.glob("*.onnx"))
        if not models:
            raise UserError(f"{path}: no .onnx file in this folder; choose the model file itself")
        if len(models) > 1:
            names = ", ".join(m.name for m in models)
            raise UserError(f"{path}: several models ({names}); choose one file")
        return models[0]
    return path


def read_label_file(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
