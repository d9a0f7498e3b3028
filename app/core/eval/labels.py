"""Class labels for a classifier's evaluation images, from wherever the user points: a CSV of
file,class (header optional), a folder of class-named subfolders, or (nothing given) a labels
CSV or class-named subfolders inside the image folder. Says why when no image got a label."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from app.core.errors import UserError

MAX_CSV_BYTES = 64 * 1024 * 1024  # a labels table, not a data set: refuse anything absurd
ACCEPTED = (
    "a CSV of file,class (header optional; file names relative to the image folder or bare) "
    "or a folder of class-named subfolders"
)


@dataclass
class ClassLabels:
    """Accepted class indices per image (empty set: unknown), where they came from, and why
    labels are missing when some or all images have none."""

    truth: list[set[int]]
    source: str = ""  # the CSV or folder read ("" when none was found)
    note: str = ""  # why images have no label ("" when all have one)
    unknown_names: list[str] = field(default_factory=list)  # label names no class matched

    @property
    def labelled(self) -> int:
        return sum(1 for t in self.truth if t)


def label_key(name: str) -> str:
    """A class name as compared: case, surrounding space and space-vs-underscore ignored."""
    return name.strip().lower().replace(" ", "_")


def label_lookup(labels: list[str]) -> dict[str, int]:
    """Normalised label and synonym ('tabby, tabby cat') -> class index."""
    lookup: dict[str, int] = {}
    for i, label in enumerate(labels):
        for name in [label, *label.split(",")]:
            lookup.setdefault(label_key(name), i)
    return lookup


def _names(cell: str) -> list[str]:
    """'great grey owl|owl (bird)' -> ['great grey owl', 'owl']: '|' separates alternatives,
    a parenthesised remark is dropped (as in the ImageNet samples' CSV)."""
    return [n for n in (part.split("(")[0].strip() for part in cell.split("|")) if n]


def read_csv_labels(path: Path) -> dict[str, list[str]]:
    """file (as written) -> accepted label names. Columns are found by a header naming a
    file column and a label/class column; without one, the first two columns are file,class."""
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise UserError(f"{path}: larger than 64 MiB; not a labels CSV")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read it as a labels CSV ({exc}); give {ACCEPTED}") from exc
    if not rows:
        return {}
    header = [h.strip().lower() for h in rows[0]]
    is_file = [("file" in h or h in ("image", "path")) for h in header]
    file_col = next((i for i, f in enumerate(is_file) if f), None)
    label_col = next((i for i, h in enumerate(header) if "label" in h or "class" in h), None)
    if file_col is not None and label_col is not None:
        rows = rows[1:]
    else:
        file_col, label_col = 0, 1
    found: dict[str, list[str]] = {}
    for row in rows:
        if len(row) > max(file_col, label_col) and row[file_col].strip():
            found[row[file_col].strip().replace("\\", "/")] = _names(row[label_col])
    return found


def _folder_labels(root: Path) -> dict[str, list[str]]:
    """file (relative to `root`, and its bare name) -> [its class-named subfolder]."""
    found: dict[str, list[str]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(sub.rglob("*")):
            if path.is_file():
                found[path.relative_to(root).as_posix()] = [sub.name]
                found.setdefault(path.name, [sub.name])
    return found


def _inside(path: Path, root: Path) -> Path | None:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def _entries(images: list[Path], images_dir: Path, table: dict[str, list[str]]) -> list[list[str]]:
    """The table's label names for each image: by its path relative to the image folder, else
    by its bare file name."""
    out = []
    for path in images:
        rel = _inside(path, images_dir)
        names = table.get(rel.as_posix()) if rel is not None else None
        out.append(names if names is not None else table.get(path.name, []))
    return out


def _from_source(images: list[Path], images_dir: Path, labels: Path) -> tuple[list[list[str]], str]:
    """Label names per image from the CSV or folder the user gave."""
    if labels.is_file():
        return _entries(images, images_dir, read_csv_labels(labels)), str(labels)
    if not labels.is_dir():
        raise UserError(f"{labels}: no such labels file or folder; give {ACCEPTED}")
    csvs = sorted(labels.glob("*.csv"))
    subdirs = [p for p in labels.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if csvs and not subdirs:
        table: dict[str, list[str]] = {}
        for path in csvs:
            table.update(read_csv_labels(path))
        return _entries(images, images_dir, table), str(csvs[0] if len(csvs) == 1 else labels)
    per_image = []
    table = _folder_labels(labels)
    for path in images:
        rel = _inside(path, labels)  # images inside the labels folder: their top folder
        if rel is not None:
            per_image.append([rel.parts[0]] if len(rel.parts) > 1 else [])
        else:
            per_image.extend(_entries([path], images_dir, table))
    return per_image, str(labels)


def _from_image_folder(images: list[Path], images_dir: Path) -> tuple[list[list[str]], str]:
    """Nothing given: a labels CSV in the image folder, else each image's class-named folder."""
    table: dict[str, list[str]] = {}
    source = ""
    for path in sorted(images_dir.glob("*.csv")):
        try:
            table.update(read_csv_labels(path))
            source = source or str(path)
        except UserError:
            continue  # some other CSV beside the images; not necessarily labels
    per_image = []
    for names, path in zip(_entries(images, images_dir, table), images):
        rel = _inside(path, images_dir)
        if not names and rel is not None and len(rel.parts) > 1:
            names = [rel.parts[0]]
            source = source or f"{images_dir} (class-named subfolders)"
        per_image.append(names)
    return per_image, source


def class_labels(
    class_names: list[str],
    images: list[Path],
    images_dir: str | Path,
    labels: str | Path | None = None,
) -> ClassLabels:
    """Accepted class indices of each image in `images` (files under `images_dir`), from
    `labels` (a CSV or a folder, see module doc) or, when None, from the image folder itself.
    UserError when `labels` names something that cannot be read."""
    images_dir = Path(images_dir)
    if labels:
        per_image, source = _from_source(images, images_dir, Path(labels))
    else:
        per_image, source = _from_image_folder(images, images_dir)
    lookup = label_lookup(class_names)
    truth: list[set[int]] = []
    unknown: list[str] = []
    for names in per_image:
        hits = {lookup[label_key(n)] for n in names if label_key(n) in lookup}
        unknown += [n for n in names if label_key(n) not in lookup and n not in unknown]
        truth.append(hits)
    result = ClassLabels(truth, source, "", unknown)
    result.note = _why(result, per_image, images_dir, labels, class_names)
    return result


def _why(
    result: ClassLabels,
    per_image: list[list[str]],
    images_dir: Path,
    labels: str | Path | None,
    class_names: list[str],
) -> str:
    """One sentence on why images have no label; '' when every image has one."""
    total, named = len(per_image), sum(1 for n in per_image if n)
    if result.labelled == total:
        return ""
    if not result.source:
        return (
            f"no class labels found: {images_dir} has no labels CSV and no class-named "
            f"subfolders; in Labels give {ACCEPTED}"
        )
    if named == 0:
        return (
            f"{result.source}: none of the {total} images is listed (names must match the "
            f"files in {images_dir}, relative to it or bare)"
        )
    if result.unknown_names:
        shown = ", ".join(f"'{n}'" for n in result.unknown_names[:4])
        more = f" and {len(result.unknown_names) - 4} more" if len(result.unknown_names) > 4 else ""
        classes = ", ".join(class_names[:4]) + (", …" if len(class_names) > 4 else "")
        prefix = "no" if result.labelled == 0 else f"{total - result.labelled} of {total}"
        return (
            f"{prefix} images have a usable label: {result.source} names {shown}{more}, which "
            f"match none of the model's {len(class_names)} classes ({classes})"
        )
    missing = total - result.labelled
    return (
        f"{missing} of {total} images have no class in {result.source} (not listed, or listed "
        f"without one, as a scene of no single class is); top-1 is over the other "
        f"{result.labelled}"
    )
