"""Reading an archive folder into items: scene folders, BigEarthNet patches, or a plain image folder.

Every file is probed (header only, plus a cheap truncation check); files that fail go to
``Archive.skipped`` with the reason, so a long run never dies on file 40,000; so do symlinks that
lead out of the archive root (the services only serve files inside it). Files with other
extensions and hidden files are not images and are ignored without a report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from rsir.data.geo import iso_date, item_geo
from rsir.data.images import IMAGE_EXTENSIONS, probe_image
from rsir.data.items import Archive, ImageError, Item, SkippedFile

LAYOUTS = ("auto", "scene-folders", "bigearthnet", "folder")
_BEN_MARK = "_B02.tif"
_BEN_LABELS = "_labels_metadata.json"
# Candidate: (id, path, labels, metadata the listing already knows) before probing.
_Candidate = tuple[str, Path, tuple[str, ...], dict]


def _hidden(name: str) -> bool:
    return name.startswith((".", "__MACOSX"))


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """os.walk in sorted order, without hidden folders and files."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        yield Path(dirpath), dirnames, sorted(f for f in filenames if not _hidden(f))


def _image_files(root: Path) -> list[Path]:
    return [d / f for d, _, files in _walk(root) for f in files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]


def _item_id(root: Path, path: Path) -> str:
    rel = path.relative_to(root)
    return rel.with_suffix("").as_posix() if path.suffix else rel.as_posix()


def _subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p.name))


def detect_layout(root: Path) -> str:
    """bigearthnet if patch folders hold ``*_B02.tif``; scene-folders if >= 2 subfolders hold images and
    the root holds none; else folder."""
    root = Path(root)
    subdirs = _subdirs(root)
    if any(any(d.glob("*" + _BEN_MARK)) for d in subdirs[:20]):
        return "bigearthnet"
    files = _image_files(root)
    if any(f.parent == root for f in files):
        return "folder"
    classes = {f.relative_to(root).parts[0] for f in files}
    return "scene-folders" if len(classes) >= 2 else "folder"


def _scene_candidates(root: Path) -> tuple[list[_Candidate], list[SkippedFile]]:
    found: list[_Candidate] = []
    skipped: list[SkippedFile] = []
    for f in _image_files(root):
        if f.parent == root:
            skipped.append(SkippedFile(f, "image outside any class folder"))
        else:
            found.append((_item_id(root, f), f, (f.relative_to(root).parts[0],), {}))
    return found, skipped


def _folder_candidates(root: Path) -> tuple[list[_Candidate], list[SkippedFile]]:
    return [(_item_id(root, f), f, (), {}) for f in _image_files(root)], []


def _ben_labels(folder: Path, files: Iterable[str]) -> tuple[tuple[str, ...], dict]:
    """(labels, {"date"} when the JSON has a valid ``acquisition_date``) of a BigEarthNet patch."""
    meta = [f for f in files if f.endswith(_BEN_LABELS)]
    if not meta:
        raise ImageError(f"no *{_BEN_LABELS} with the patch labels")
    try:
        doc = json.loads((folder / meta[0]).read_text(encoding="utf-8"))
        labels = doc["labels"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ImageError(f"unreadable {meta[0]} ({type(e).__name__}: {e})") from e
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ImageError(f"{meta[0]}: 'labels' is not a list of strings")
    date = iso_date(doc.get("acquisition_date"))
    return tuple(labels), ({"date": date} if date else {})


def _ben_candidates(root: Path) -> tuple[list[_Candidate], list[SkippedFile]]:
    found, skipped = [], []
    for d, dirnames, files in _walk(root):
        if any(f.endswith(_BEN_MARK) for f in files):
            dirnames[:] = []  # a patch folder has no patches below it
            try:
                found.append((d.relative_to(root).as_posix(), d, *_ben_labels(d, files)))
            except ImageError as e:
                skipped.append(SkippedFile(d, str(e)))
        elif d == root:
            for f in files:
                if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                    skipped.append(SkippedFile(d / f, "image outside any BigEarthNet patch folder"))
    return found, skipped


_CANDIDATES = {
    "scene-folders": _scene_candidates,
    "bigearthnet": _ben_candidates,
    "folder": _folder_candidates,
}


def _leaves_root(path: Path, root: Path) -> bool:
    """True when ``path`` (or, for a BigEarthNet patch folder, a file in it) is a symlink that resolves outside
    ``root`` (already resolved): a link out of the archive must not make another file an item. Folders come
    from ``os.walk``, which does not follow links, so only the files themselves can be links (one lstat each)."""
    if path.is_symlink():
        return not path.resolve().is_relative_to(root)
    entries = [path / f for f in os.listdir(path) if not _hidden(f)] if path.is_dir() else []
    return any(e.is_symlink() and not e.resolve().is_relative_to(root) for e in entries)


def _probe_all(candidates: list[_Candidate], skipped: list[SkippedFile], progress: bool, root: Path) -> list[Item]:
    if progress:
        from tqdm import tqdm

        candidates = tqdm(candidates, desc="probing", unit="file")
    items: dict[str, Item] = {}
    root_r = root.resolve()
    for item_id, path, labels, known in candidates:
        if item_id in items:  # e.g. a.jpg and a.png in one folder: ids drop the extension
            skipped.append(SkippedFile(path, f"duplicate id {item_id!r} (kept {items[item_id].path.name})"))
            continue
        if _leaves_root(path, root_r):
            skipped.append(SkippedFile(path, "a symlink to a file outside the archive root"))
            continue
        try:
            info = probe_image(path)
        except ImageError as e:
            skipped.append(SkippedFile(path, getattr(e, "reason", str(e))))
            continue
        meta = {"width": info.width, "height": info.height, "bands": info.bands, "dtype": info.dtype}
        meta.update(item_geo(path))  # bbox / date when the headers carry them
        meta.update(known)
        items[item_id] = Item(item_id, path, labels, meta)
    return [items[k] for k in sorted(items)]


def open_archive(root: Path, layout: str = "auto", strict: bool = False, progress: bool = False) -> Archive:
    """Read an archive folder. ``layout``: auto, scene-folders, bigearthnet or folder.

    Items are sorted by id. Bad files go to ``Archive.skipped``; with ``strict=True`` they raise
    ``ImageError`` instead. Raises ``FileNotFoundError`` / ``NotADirectoryError`` for a bad root and
    ``ValueError`` for an unknown layout or an archive without a single usable image.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"archive folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"archive must be a folder: {root}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    kind = detect_layout(root) if layout == "auto" else layout
    candidates, skipped = _CANDIDATES[kind](root)
    items = _probe_all(candidates, skipped, progress, root)
    skipped.sort(key=lambda s: str(s.path))
    archive = Archive(root, kind, items, skipped)
    if strict and skipped:
        raise ImageError(f"{len(skipped)} unusable file(s) in {root} (strict mode):\n" + archive.summary())
    if not items:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ValueError(f"no usable images in {root} as {kind} (looked for {exts})\n" + archive.summary())
    return archive


def item_labels(archive: Archive) -> list[tuple[str, ...]]:
    """Labels per item, parallel to ``archive.items``."""
    return [it.labels for it in archive.items]


def label_names(archive: Archive) -> list[str]:
    """Sorted distinct labels of an archive."""
    return sorted({label for it in archive.items for label in it.labels})
