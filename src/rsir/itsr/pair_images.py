"""The image side of the change-caption feature caches, shared by pair (ITSR) and single-date (text) datasets.

Encoder inputs read from the pairs (both dates, or the ``after`` date only), the cache keys of arrays computed
from those images (encoder name + weights hash + preprocessing + the images' ids, sizes and mtimes), and the
streamed, atomic writing of large float16 arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from rsir.data.changecap import ChangePair, load_pair_image


def digest(payload: object) -> str:
    """Short, stable hash of a JSON-serialisable value (cache keys)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def pairs_digest(pairs: list[ChangePair]) -> str:
    stamp = []
    for p in pairs:
        b, a = p.before.stat(), p.after.stat()
        stamp.append([p.id, b.st_size, b.st_mtime_ns, a.st_size, a.st_mtime_ns])
    return digest(stamp)


def uses_mean_tokens(encoder) -> bool:
    """Whether the encoder's ``encode()`` is the default token mean (then the tokens give the globals too)."""
    from rsir.models.encoders import ImageEncoder

    return type(encoder).encode is ImageEncoder.encode


def prepared_pair(pair: ChangePair, preprocess) -> torch.Tensor:
    """[2, C, S, S] encoder input for one pair."""
    from rsir.models.preprocess import prepare

    return torch.stack([prepare(load_pair_image(p), preprocess) for p in (pair.before, pair.after)])


class PairInputs(torch.utils.data.Dataset):
    """Encoder inputs of ``pairs``: [2, C, S, S] (before, after), or with ``single_date`` the ``after`` image
    alone, [C, S, S] (single-date archives store a scene as a pair of the same image)."""

    def __init__(self, pairs: list[ChangePair], preprocess, single_date: bool = False) -> None:
        self.pairs, self.preprocess, self.single_date = pairs, preprocess, single_date

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.single_date:
            from rsir.models.preprocess import prepare

            return prepare(load_pair_image(self.pairs[i].after), self.preprocess)
        return prepared_pair(self.pairs[i], self.preprocess)


def pair_batches(
    pairs: list[ChangePair],
    preprocess,
    batch_size: int,
    workers: int,
    desc: str,
    progress: bool,
    single_date: bool = False,
) -> Iterable[torch.Tensor]:
    """Batches of :class:`PairInputs` with a progress bar; ``workers`` decode processes (0: in this one)."""
    from tqdm.auto import tqdm

    inputs = PairInputs(pairs, preprocess, single_date)
    loader = torch.utils.data.DataLoader(inputs, batch_size=batch_size, num_workers=workers)
    return tqdm(loader, desc=desc, disable=not progress, unit="batch")


def image_cache_key(encoder, pairs: list[ChangePair], cache_dir: Path, name: str) -> tuple[Path, str]:
    """(folder, key) of cached image arrays: the folder names the encoder and its weights, the key ``name``
    plus a digest of the pairs (ids, sizes, mtimes) and the preprocessing."""
    from rsir.models.runtime import cache_variant

    cfg = encoder.config
    folder = Path(cache_dir) / "itsr" / f"{cfg.name.replace('/', '_').replace(':', '_')}-{encoder.weights_hash}"
    stamp = [pairs_digest(pairs), cfg.to_dict()] + ([cache_variant(encoder)] if cache_variant(encoder) else [])
    return folder, f"{name}-{digest(stamp)}"


def stream_to_npy(path: Path, n: int, batches: Iterable[np.ndarray], split: str) -> np.ndarray:
    """Write float16 row batches (``n`` rows in all) to ``path`` through a temporary memmap, renamed into
    place when complete; returns the finished file memory-mapped."""
    out, tmp, start = None, path.with_suffix(f".tmp{os.getpid()}.npy"), 0
    for rows in batches:
        if out is None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, *rows.shape[1:]))
        out[start : start + len(rows)] = rows.astype(np.float16)
        start += len(rows)
    if out is None:
        raise ValueError(f"split {split!r} has no pairs to encode")
    out.flush()
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")
