"""Cached encoder features of an archive, optionally passed through a trained head."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rsir.data.items import Archive
from rsir.embed.cache import cache_root, embedding_key
from rsir.embed.local import Embeddings, embed_archive, normalise
from rsir.models.encoders import ImageEncoder

if TYPE_CHECKING:
    from rsir.models.heads import Head


def archive_features(
    archive: Archive,
    encoder: ImageEncoder,
    *,
    cache_dir: Path | None = None,
    batch_size: int = 32,
    workers: int = 1,
    strict: bool = False,
    progress: bool = True,
) -> Embeddings:
    """Normalised encoder features of every readable item, embedded once and cached (resumable)."""
    from rsir.models.runtime import cache_variant

    key = embedding_key(archive.root, archive.ids, encoder.config, encoder.weights_hash, variant=cache_variant(encoder))
    workdir = (cache_dir or cache_root() / "features") / key
    return embed_archive(
        archive, encoder, workdir, batch_size=batch_size, workers=workers, strict=strict, progress=progress
    )


def apply_head(vectors: np.ndarray, head: Head | None) -> np.ndarray:
    """Project features with a trained head (``None`` = the encoder's own space)."""
    if head is None:
        return vectors
    import torch

    with torch.inference_mode():
        out = head(torch.from_numpy(vectors)).numpy()
    return normalise(out)
