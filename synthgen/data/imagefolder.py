"""A local folder with one subfolder per class: `root/<class>/**/<image>`, any format decode reads.

Class names are the subfolder names in sorted order. Hidden files and folders (names starting
with '.') are skipped; every other file becomes an item (a text file is rejected later by
decode, with its reason). Files directly in `root` belong to no class and are rejected.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from synthgen.data.sources import DataSourceError, LocalFiles, Rejection, Source, SourceItem, SourceSpec, key_from_path


class ImagefolderOptions(LocalFiles):
    layout = "a folder with one subfolder of images per class (path/<class>/<image>)"


def is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def visible_files(folder: Path, root: Path) -> list[Path]:
    """Regular files under `folder`, recursively, skipping hidden ones, sorted by relative path."""
    files = (p for p in folder.rglob("*") if p.is_file() and not is_hidden(p.relative_to(root)))
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def class_folders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def read_item(path: Path, root: Path, label: int, used: set[str]) -> SourceItem | Rejection:
    relative = path.relative_to(root).as_posix()
    key = key_from_path(relative, used)
    try:
        return SourceItem(key, path.read_bytes(), label, str(path))
    except OSError as e:
        return Rejection(key, str(path), "unreadable", f"{type(e).__name__}: {e}")


def imagefolder_source(options: ImagefolderOptions, resolution: int) -> Source:
    """Items for every visible file under each class subfolder of `data.path`."""
    root = Path(options.path)
    if not root.is_dir():
        raise DataSourceError(f"data.path {root} is not a folder: put {options.layout} there")
    folders = class_folders(root)
    if not folders:
        raise DataSourceError(f"{root} has no class subfolders: put {options.layout} there")

    def items() -> Iterator[SourceItem | Rejection]:
        used: set[str] = set()
        for stray in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
            key = key_from_path(stray.name, used)
            yield Rejection(key, str(stray), "not_in_class_folder", "files must sit in a class subfolder")
        for label, folder in enumerate(folders):
            for path in visible_files(folder, root):
                yield read_item(path, root, label, used)

    return Source("imagefolder", [f.name for f in folders], items)


SOURCE = SourceSpec("imagefolder", ImagefolderOptions, imagefolder_source)
