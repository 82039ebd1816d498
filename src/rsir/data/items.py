"""The archive contract: items with stable ids, and the report of files that were skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Item:
    """One scene of an archive.

    ``id`` is stable across runs and machines: the path relative to the archive root, without
    extension, with ``/`` separators (e.g. ``airplane/airplane00``). ``path`` is a file, or a folder
    for archives that store one file per band (BigEarthNet). ``labels`` is empty when unlabelled.
    """

    id: str
    path: Path
    labels: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass
class Archive:
    """Items of one archive plus what was skipped while reading it (never a crash mid-run)."""

    root: Path
    kind: str
    items: list[Item]
    skipped: list[SkippedFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]

    @property
    def is_labelled(self) -> bool:
        return any(it.labels for it in self.items)

    @property
    def is_multilabel(self) -> bool:
        return any(len(it.labels) > 1 for it in self.items)

    def subset(self, indices) -> Archive:
        return Archive(self.root, self.kind, [self.items[i] for i in indices], list(self.skipped))

    def summary(self) -> str:
        lines = [f"{len(self.items)} items ({self.kind}) in {self.root}; {len(self.skipped)} skipped"]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


class ImageError(ValueError):
    """A file that cannot be used as an image (corrupt, empty, not an image, too small or too large)."""
