"""Cached features of single-date caption datasets, in the text-ITSR machinery's own types.

A scene is a pair whose two dates are the same image, so each image is encoded ONCE and its global is
repeated for both dates (``SplitFeatures.globals_`` is ``[N, 2, D]`` as the fusions expect; ``after``
reads date 1). Fine-tuning caches the frozen trunk's maps once per image (``[N, C, h, w]``). Cache keys
are those of :mod:`rsir.itsr.pair_images` (encoder name + weights hash + preprocessing + the images' ids,
sizes and mtimes), under distinct names, so pair and scene caches never mix.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rsir.data.changecap import ChangeCaptionArchive, ChangePair
from rsir.itsr.features import SplitFeatures, caption_features
from rsir.itsr.pair_images import image_cache_key, pair_batches, stream_to_npy, uses_mean_tokens


@torch.inference_mode()
def encode_scenes(encoder, x: torch.Tensor) -> torch.Tensor:
    """x [B, C, S, S] -> globals [B, D] (the token mean for encoders whose encode() is that mean)."""
    return encoder.tokens(x).mean(1) if uses_mean_tokens(encoder) else encoder.encode(x)


def _globals_path(encoder, pairs, cache_dir: Path, split: str) -> Path:
    folder, key = image_cache_key(encoder, pairs, cache_dir, f"{split}-scenes")
    return folder / f"{key}.globals.npy"


def _maps_path(encoder, pairs, cache_dir: Path, split: str, n_tail: int) -> Path:
    folder, key = image_cache_key(encoder, pairs, cache_dir, f"{split}-scenes-trunk{n_tail}")
    return folder / f"{key}.npy"


def _encode_all(pairs, encoder, cache_dir: Path, split: str, n_tail: int, batch_size: int, progress: bool) -> None:
    """One pass over the images: the globals (cached) and, with ``n_tail``, the trunk maps (cached) too.

    With a split encoder the globals are the tail's token mean on the trunk's float32 maps, which is what
    ``encode()`` computes, so fine-tuning runs cost one pass over the archive, not two.
    """
    g_path = _globals_path(encoder, pairs, cache_dir, split)
    g_path.parent.mkdir(parents=True, exist_ok=True)
    device = next(encoder.parameters()).device
    trunk, tail = encoder.split(n_tail) if n_tail else (None, None)
    parts: list[np.ndarray] = []

    def batches():
        desc, prep = f"image features ({split})", encoder.config.preprocess
        for x in pair_batches(pairs, prep, batch_size, 0, desc, progress, single_date=True):  # decoded here
            with torch.inference_mode():
                if trunk is None:
                    parts.append(encode_scenes(encoder, x.to(device)).float().cpu().numpy())
                    yield None
                    continue
                maps = trunk(x.to(device))
                parts.append(tail(maps).mean(1).float().cpu().numpy())
                yield maps.cpu().numpy()

    if trunk is None:
        for _ in batches():
            pass
    else:
        stream_to_npy(_maps_path(encoder, pairs, cache_dir, split, n_tail), len(pairs), batches(), split)
    if not parts:
        raise ValueError(f"split {split!r} has no images to encode")
    tmp = g_path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, np.concatenate(parts))
    os.replace(tmp, g_path)


def scene_globals(
    pairs: list[ChangePair], encoder, cache_dir: Path, split: str, batch_size: int = 32, progress: bool = True
) -> np.ndarray:
    """float32 [N, D] image globals of single-date ``pairs`` (the ``after`` image), cached."""
    path = _globals_path(encoder, pairs, cache_dir, split)
    if not path.is_file():
        _encode_all(pairs, encoder, cache_dir, split, 0, batch_size, progress)
    return np.load(path)


def scene_trunk_maps(
    pairs: list[ChangePair], encoder, n_tail: int, cache_dir: Path, split: str, progress: bool = True
) -> np.ndarray:
    """float16 [N, C, h, w] outputs of the encoder's frozen trunk (all but the last ``n_tail`` blocks), cached
    (the same pass caches the globals)."""
    path = _maps_path(encoder, pairs, cache_dir, split, n_tail)
    if not path.is_file():
        _encode_all(pairs, encoder, cache_dir, split, n_tail, 32, progress)
    return np.load(path, mmap_mode="r")


def scene_split_features(
    archive: ChangeCaptionArchive, split: str, encoders, cache_dir: Path, progress: bool = True, images: bool = True
) -> SplitFeatures:
    """Features of one split of a single-date caption archive; ``encoders`` is a rsir.itsr.pipeline.Encoders.

    ``images=False`` leaves the image globals out (fine-tuning computes its own from trunk maps).
    """
    feats = caption_features(archive, split, encoders, cache_dir, progress, unit="images")  # cheaper pass first
    if not images:
        return feats
    g = scene_globals(feats.pairs, encoders.image, cache_dir, split, progress=progress)
    return replace(feats, globals_=np.repeat(g[:, None], 2, axis=1))  # one date, seen as both: [N, 2, D]
