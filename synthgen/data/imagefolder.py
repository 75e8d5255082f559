"""A local folder with one subfolder per class: `root/<class>/**/<image>`, any format decode reads.

Class names are the subfolder names in sorted order. Hidden files and folders (names starting
with '.') are skipped; every other file becomes an item (a text file is rejected later by
decode, with its reason). Files directly in `root` belong to no class and are rejected.

Links are followed only while they stay inside `root`: a class folder, folder or file that is a
symbolic link resolving outside it is rejected with the reason `outside_root` and never read or
walked (a link to `/` would otherwise walk the whole filesystem). A link back to a folder already
walked is skipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from synthgen.data.labels import check_class_count
from synthgen.data.sources import DataSourceError, LocalFiles, Rejection, Source, SourceItem, SourceSpec, key_from_path

OUTSIDE_ROOT = "outside_root"


class ImagefolderOptions(LocalFiles):
    layout = "a folder with one subfolder of images per class (path/<class>/<image>)"


def is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def escapes(path: Path, root: Path) -> bool:
    """`path` is a link that resolves outside `root` (a resolved path)."""
    return path.is_symlink() and not path.resolve().is_relative_to(root)


def walk(folder: Path, root: Path, walked: set[Path]) -> Iterator[Path]:
    """Visible files under `folder` and the links in it that escape `root`; links that stay inside
    are followed, each real folder walked once."""
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if escapes(entry, root):
            yield entry
        elif entry.is_dir():
            real = entry.resolve()
            if real not in walked:
                walked.add(real)
                yield from walk(entry, root, walked)
        elif entry.is_file():
            yield entry


def visible_files(folder: Path, root: Path) -> list[Path]:
    """Regular files under `folder` (and links out of `root`, to reject), skipping hidden ones, sorted by
    path relative to `root`."""
    return sorted(walk(folder, root.resolve(), {folder.resolve()}), key=lambda p: p.relative_to(root).as_posix())


def class_folders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def outside_root(path: Path, root: Path, used: set[str]) -> Rejection:
    key = key_from_path(path.relative_to(root).as_posix(), used)
    return Rejection(key, str(path), OUTSIDE_ROOT, f"a link to {path.resolve()}, outside data.path {root}")


def read_item(path: Path, root: Path, label: int, used: set[str]) -> SourceItem | Rejection:
    if escapes(path, root.resolve()):
        return outside_root(path, root, used)
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
    escaping = [f for f in folders if escapes(f, root.resolve())]
    inside = [f for f in folders if f not in escaping]
    if not inside:
        raise DataSourceError(f"{root} has no class subfolders: put {options.layout} there")
    check_class_count(len(inside), options.max_classes, str(root))

    def items() -> Iterator[SourceItem | Rejection]:
        used: set[str] = set()
        for stray in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
            key = key_from_path(stray.name, used)
            yield Rejection(key, str(stray), "not_in_class_folder", "files must sit in a class subfolder")
        for folder in escaping:
            yield outside_root(folder, root, used)
        for label, folder in enumerate(inside):
            for path in visible_files(folder, root):
                yield read_item(path, root, label, used)

    return Source("imagefolder", [f.name for f in inside], items)


SOURCE = SourceSpec("imagefolder", ImagefolderOptions, imagefolder_source)
