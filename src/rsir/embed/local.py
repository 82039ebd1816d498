"""Embed an archive on this machine: batched, with a progress bar, resumable from shards on disk.

A run writes one ``.npz`` shard per ``shard_size`` items into its work folder; a rerun after a kill
reuses the finished shards and only embeds the rest. Images that fail to decode are reported, not fatal
(unless ``strict``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rsir.data.items import Archive, ImageError, SkippedFile
from rsir.embed.cache import atomic_write_bytes
from rsir.models.encoders import ImageEncoder


@dataclass
class Embeddings:
    """float32 [N, D] L2-normalised vectors parallel to ``ids``; ``failed`` lists items that could not be read."""

    ids: list[str]
    vectors: np.ndarray
    failed: list[SkippedFile] = field(default_factory=list)


class _ArchiveImages(torch.utils.data.Dataset):
    def __init__(self, archive: Archive, indices: list[int], encoder: ImageEncoder) -> None:
        self.items = [archive.items[i] for i in indices]
        self.prep = encoder.config.preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        from rsir.data.images import load_image
        from rsir.models.preprocess import prepare

        try:
            return prepare(load_image(self.items[i].path), self.prep), ""
        except (ImageError, ValueError, OSError) as err:
            empty = torch.zeros(self.prep.in_channels, self.prep.size, self.prep.size)
            return empty, str(err) or type(err).__name__


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _embed_shard(
    encoder: ImageEncoder, dataset: _ArchiveImages, batch_size: int, workers: int, bar: tqdm
) -> tuple[np.ndarray, list[str]]:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, persistent_workers=False
    )
    device = next(encoder.parameters()).device
    out, errors = [], []
    with torch.inference_mode():
        for x, errs in loader:
            out.append(encoder.encode(x.to(device)).float().cpu().numpy())
            errors.extend(errs)
            bar.update(len(errs))
    return np.concatenate(out), errors


def embed_archive(
    archive: Archive,
    encoder: ImageEncoder,
    workdir: Path,
    *,
    batch_size: int = 32,
    workers: int = 1,
    shard_size: int = 1024,
    strict: bool = False,
    progress: bool = True,
) -> Embeddings:
    """Embed every item (resuming from shards in ``workdir``) and return normalised vectors of the good ones."""
    workdir.mkdir(parents=True, exist_ok=True)
    n = len(archive)
    starts = list(range(0, n, shard_size))
    done = sum(min(shard_size, n - s) for s in starts if (workdir / f"shard_{s:09d}.npz").exists())
    bar = tqdm(total=n, initial=done, desc="embedding", unit="img", disable=not progress)
    parts, errors = [], []
    for start in starts:
        shard = workdir / f"shard_{start:09d}.npz"
        if not shard.exists():
            dataset = _ArchiveImages(archive, list(range(start, min(start + shard_size, n))), encoder)
            vectors, errs = _embed_shard(encoder, dataset, batch_size, workers, bar)
            buf = io.BytesIO()
            np.savez(buf, vectors=vectors, errors=np.array(errs, dtype=str))
            atomic_write_bytes(shard, buf.getvalue())
        with np.load(shard) as data:
            parts.append(data["vectors"])
            errors.extend(str(e) for e in data["errors"])
    bar.close()
    return _collect(archive, np.concatenate(parts) if parts else np.zeros((0, 0), np.float32), errors, strict)


def _collect(archive: Archive, vectors: np.ndarray, errors: list[str], strict: bool) -> Embeddings:
    bad = [i for i, e in enumerate(errors) if e]
    failed = [SkippedFile(archive.items[i].path, errors[i]) for i in bad]
    if strict and failed:
        raise ImageError(
            "unreadable images (strict): " + "; ".join(f"{f.path}: {f.reason}" for f in failed[:10])
        )
    keep = np.array([not e for e in errors], dtype=bool)
    ids = [it.id for it, k in zip(archive.items, keep, strict=True) if k]
    return Embeddings(ids, normalise(vectors[keep]), failed)
