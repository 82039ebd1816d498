"""Reader for single-date image-caption datasets in the Karpathy layout (UCM-Captions, Sydney-Captions,
RSICD, RSITMD): a JSON ``{"images": [{"filename", "split", "sentences": [{"raw"}, ...]}, ...]}`` plus an
image folder.

File names resolve against the image folder in this order: the name itself (``images/airport_1.jpg``),
the same stem with any image extension (the shared UC Merced copy is JPEG where the JSON says ``.tif``),
and, for UCM-Captions' ``N.tif`` names over a scene archive with one folder per class, the scene
``<class>/<class>NN`` with N = 100 * (alphabetical class index) + NN + 1 (1 = agricultural00,
2100 = tenniscourt99).

The result is a :class:`rsir.data.changecap.ChangeCaptionArchive` whose pairs are ONE date (``before`` and
``after`` are the same image), so the text-ITSR machinery (features, training, evaluation) runs on it
unchanged. Pair ids are the scene ids of the image folder (path relative to it, no extension), the ids a
scene index built over the same folder gives its items, so a model trained here searches that index.
Bad entries (no filename, unknown split, no usable caption, image not found) are skipped and reported.
"""

from __future__ import annotations

import re
from pathlib import Path

from rsir.data.changecap import (
    ChangeCaptionArchive,
    ChangeCaptionError,
    ChangePair,
    _clean_captions,
    _read_json,
    normalise_split,
)
from rsir.data.items import SkippedFile

IMAGE_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp")
SCENES_PER_CLASS = 100  # UCM-Captions numbers UC Merced scenes class by class, 100 each
UCM_CLASSES = [
    "agricultural",
    "airplane",
    "baseballdiamond",
    "beach",
    "buildings",
    "chaparral",
    "denseresidential",
    "forest",
    "freeway",
    "golfcourse",
    "harbor",
    "intersection",
    "mediumresidential",
    "mobilehomepark",
    "overpass",
    "parkinglot",
    "river",
    "runway",
    "sparseresidential",
    "storagetanks",
    "tenniscourt",
]
_NUMBERED = re.compile(r"^(\d+)$")


class _Resolver:
    """File name of a caption entry -> image path, or None."""

    def __init__(self, images: Path) -> None:
        self.images = images
        self._classes: list[str] | None = None
        self._stems: dict[str, Path] | None = None

    def _by_stem(self, folder: Path, stem: str) -> Path | None:
        for suffix in IMAGE_SUFFIXES:
            for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
        return None

    @property
    def classes(self) -> list[str]:
        """Class order of the numbering: UC Merced's 21 classes when the folder holds some of them (a partial
        copy keeps the numbering), else the folder's own class folders, alphabetically."""
        if self._classes is None:
            present = sorted(p.name for p in self.images.iterdir() if p.is_dir() and not p.name.startswith("."))
            self._classes = UCM_CLASSES if present and set(present) <= set(UCM_CLASSES) else present
        return self._classes

    def __call__(self, name: str) -> Path | None:
        direct = self.images / name
        if direct.is_file():
            return direct
        stem = Path(name).stem
        found = self._by_stem(self.images / Path(name).parent, stem)
        if found is not None:
            return found
        number = _NUMBERED.match(stem)
        if number and self.classes:
            index = int(number.group(1)) - 1
            c, nn = divmod(index, SCENES_PER_CLASS)
            if index >= 0 and c < len(self.classes):
                cls = self.classes[c]
                return self._by_stem(self.images / cls, f"{cls}{nn:02d}")
        return None


def open_scene_captions(captions: str | Path, images: str | Path, split: str | None = None) -> ChangeCaptionArchive:
    """Read a Karpathy-layout caption file over an image folder (one date per item); optionally one split."""
    captions, images = Path(captions), Path(images)
    if not captions.is_file():
        raise ChangeCaptionError(f"caption file not found: {captions}")
    if not images.is_dir():
        raise ChangeCaptionError(f"image folder not found: {images}")
    data = _read_json(captions)
    resolve = _Resolver(images)
    pairs: list[ChangePair] = []
    skipped: list[SkippedFile] = []
    seen: set[str] = set()
    for n, entry in enumerate(data["images"]):
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            skipped.append(SkippedFile(captions, f"entry {n}: no filename"))
            continue
        try:
            item_split = normalise_split(entry.get("split") or "")
        except ChangeCaptionError as exc:
            skipped.append(SkippedFile(captions, f"entry {n} ({name}): {exc}"))
            continue
        texts = _clean_captions(entry, f"{captions.name}:{name}", skipped)
        if not texts:
            skipped.append(SkippedFile(captions, f"entry {n} ({name}): no usable caption, skipped"))
            continue
        path = resolve(name)
        if path is None:
            skipped.append(SkippedFile(images / name, f"entry {n}: image not found in {images}, skipped"))
            continue
        item_id = path.relative_to(images).with_suffix("").as_posix()
        if item_id in seen:
            skipped.append(SkippedFile(path, f"entry {n}: image already listed by an earlier entry, skipped"))
            continue
        seen.add(item_id)
        pairs.append(ChangePair(item_id, path, path, texts, True, item_split, {"filename": name}))
    if not pairs:
        raise ChangeCaptionError(
            f"{captions}: no usable entry over {images} ({len(skipped)} skipped"
            + (f"; first: {skipped[0].reason}" if skipped else "")
            + ")"
        )
    archive = ChangeCaptionArchive(images, "scene-captions", pairs, skipped)
    return archive.split(split) if split else archive
