"""Model files on disk: content hash, the `.onnx` inside a checkpoint folder, label lists."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.core.errors import UserError


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
