"""Cached features of single-date caption datasets, in the text-ITSR machinery's own types.

A scene is a pair whose two dates are the same image, so each image is encoded ONCE and its global is
repeated for both dates (``SplitFeatures.globals_`` is ``[N, 2, D]`` as the fusions expect; ``after``
reads date 1). Fine-tuning caches the frozen trunk's maps once per image (``[N, C, h, w]``). Cache keys
are those of :mod:`rsir.itsr.features` (encoder name + weights hash + preprocessing + the images' ids,
sizes and mtimes), under distinct names, so pair and scene caches never mix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from rsir.data.changecap import ChangeCaptionArchive, ChangePair, load_pair_image
from rsir.itsr.features import SplitFeatures, _pair_cache, _stream_to_npy, _uses_mean_tokens, text_features


class _SceneInputs(torch.utils.data.Dataset):
    def __init__(self, pairs: list[ChangePair], preprocess) -> None:
        self.pairs, self.preprocess = pairs, preprocess

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> torch.Tensor:
        from rsir.models.preprocess import prepare

        return prepare(load_pair_image(self.pairs[i].after), self.preprocess)


def _batches(pairs, preprocess, batch_size: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    loader = torch.utils.data.DataLoader(_SceneInputs(pairs, preprocess), batch_size=batch_size)
    return tqdm(loader, desc=desc, disable=not progress, unit="batch")


@torch.inference_mode()
def encode_scenes(encoder, x: torch.Tensor) -> torch.Tensor:
    """x [B, C, S, S] -> globals [B, D] (the token mean for encoders whose encode() is that mean)."""
    return encoder.tokens(x).mean(1) if _uses_mean_tokens(encoder) else encoder.encode(x)


def scene_globals(
    pairs: list[ChangePair], encoder, cache_dir: Path, split: str, batch_size: int = 32, progress: bool = True
) -> np.ndarray:
    """float32 [N, D] image globals of single-date ``pairs`` (the ``after`` image), cached."""
    folder, key = _pair_cache(encoder, pairs, cache_dir, f"{split}-scenes")
    path = folder / f"{key}.globals.npy"
    if path.is_file():
        return np.load(path)
    folder.mkdir(parents=True, exist_ok=True)
    device = next(encoder.parameters()).device
    parts = [
        encode_scenes(encoder, x.to(device)).float().cpu().numpy()
        for x in _batches(pairs, encoder.config.preprocess, batch_size, f"image features ({split})", progress)
    ]
    if not parts:
        raise ValueError(f"split {split!r} has no images to encode")
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, np.concatenate(parts))
    os.replace(tmp, path)
    return np.load(path)


def scene_trunk_maps(
    pairs: list[ChangePair], encoder, n_tail: int, cache_dir: Path, split: str, progress: bool = True
) -> np.ndarray:
    """float16 [N, C, h, w] outputs of the encoder's frozen trunk (all but the last ``n_tail`` blocks), cached."""
    folder, key = _pair_cache(encoder, pairs, cache_dir, f"{split}-scenes-trunk{n_tail}")
    path = folder / f"{key}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    folder.mkdir(parents=True, exist_ok=True)
    trunk, _ = encoder.split(n_tail)
    device = next(encoder.parameters()).device

    def maps():
        for x in _batches(pairs, encoder.config.preprocess, 32, f"trunk features ({split})", progress):
            with torch.inference_mode():
                yield trunk(x.to(device)).cpu().numpy()

    return _stream_to_npy(path, len(pairs), maps(), split)


def scene_split_features(
    archive: ChangeCaptionArchive, split: str, encoders, cache_dir: Path, progress: bool = True, images: bool = True
) -> SplitFeatures:
    """Features of one split of a single-date caption archive; ``encoders`` is a rsir.itsr.pipeline.Encoders.

    ``images=False`` leaves the image globals out (fine-tuning computes its own from trunk maps).
    """
    pairs = archive.split(split).pairs
    if not pairs:
        raise ValueError(f"{archive.root}: split {split!r} has no images")
    counts = np.array([len(p.captions) for p in pairs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    captions = [c for p in pairs for c in p.captions]
    text = text_features(captions, encoders, cache_dir, split, progress=progress)  # cheaper pass first
    glob = None
    if images:
        g = scene_globals(pairs, encoders.image, cache_dir, split, progress=progress)
        glob = np.repeat(g[:, None], 2, axis=1)  # one date, seen as both: [N, 2, D]
    return SplitFeatures(pairs, glob, None, text, np.repeat(np.arange(len(pairs)), counts), offsets)
