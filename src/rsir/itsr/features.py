"""Frozen-encoder features of a change-caption split, computed once and cached.

Per split: image globals ``float32 [N, 2, D]`` and patch tokens ``float16 [N, 2, L, Dt]`` (before, after),
and caption embeddings ``float32 [M, Dtext]``. Cache files are keyed by encoder name + weights hash +
preprocessing and by the pairs (ids, image sizes and mtimes) or caption texts, so a regenerated dataset
or another encoder never reuses stale features. Tokens are memory-mapped, not loaded, until needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

# load_pair_image, pairs_digest and prepared_pair stay importable from here (public names before the move).
from rsir.data.changecap import ChangeCaptionArchive, ChangePair, load_pair_image  # noqa: F401
from rsir.itsr.pair_images import (  # noqa: F401
    digest,
    image_cache_key,
    pair_batches,
    pairs_digest,
    prepared_pair,
    stream_to_npy,
    uses_mean_tokens,
)


@dataclass
class SplitFeatures:
    pairs: list[ChangePair]
    globals_: np.ndarray | None  # float32 [N, 2, D]; None when fine-tuning computes them
    tokens: np.ndarray | None  # float16 [N, 2, L, Dt] (memmap) or None when not requested
    text: np.ndarray  # float32 [M, Dtext], captions of pair i at caption_offsets[i]:caption_offsets[i+1]
    caption_pair: np.ndarray  # int64 [M]: pair index of each caption
    caption_offsets: np.ndarray  # int64 [N + 1]

    @property
    def captions(self) -> list[str]:
        return [c for p in self.pairs for c in p.captions]

    @property
    def changed(self) -> np.ndarray:
        return np.array([p.changed for p in self.pairs], dtype=bool)


def default_cache_dir(dataset: Path, fallback: Path) -> Path:
    """``DATASET/.rsir_cache`` when the dataset folder is writable, else ``fallback`` (next to the ckpt)."""
    dataset = Path(dataset)
    return dataset / ".rsir_cache" if os.access(dataset, os.W_OK) else Path(fallback) / ".rsir_cache"


@torch.inference_mode()
def encode_pair_batch(encoder, x: torch.Tensor, token_stage: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, 2, C, S, S] -> (globals [B, 2, D], tokens [B, 2, L, Dt]) with one shared encoder.

    ``token_stage`` N > 0: the tokens are the map after all but the encoder's last N blocks (finer, earlier:
    14 x 14 x 112 for N = 5 on EfficientNet-Lite0) instead of the final ones; the globals stay final."""
    from rsir.models.runtime import frozen_pass

    b = x.shape[0]
    flat = x.flatten(0, 1)
    tokens = frozen_pass(encoder, "tokens")(flat)
    glob = tokens.mean(1) if uses_mean_tokens(encoder) else frozen_pass(encoder, "encode")(flat)
    if token_stage:
        tokens = map_tokens(frozen_pass(encoder, f"trunk:{token_stage}")(flat))
    return glob.reshape(b, 2, -1), tokens.reshape(b, 2, *tokens.shape[1:])


def map_tokens(maps):
    """Feature maps [..., C, h, w] -> tokens [..., h*w, C] (torch or numpy, row-major positions)."""
    *lead, c, h, w = maps.shape
    flat = maps.reshape(*lead, c, h * w)
    return flat.transpose(-1, -2) if isinstance(flat, torch.Tensor) else np.swapaxes(flat, -1, -2)


def image_features(
    pairs: list[ChangePair],
    encoder,
    cache_dir: Path,
    split: str,
    batch_size: int = 32,
    workers: int = 1,  # one decode process: images are decoded while the encoder runs on the last batch
    progress: bool = True,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """(globals float32 [N, 2, D], tokens float16 memmap [N, 2, L, Dt]) for ``pairs``, cached."""
    folder, key = image_cache_key(encoder, pairs, cache_dir, split)
    g_path, t_path = folder / f"{key}.globals.npy", folder / f"{key}.tokens.npy"
    if g_path.is_file() and t_path.is_file():
        return np.load(g_path), np.load(t_path, mmap_mode="r")
    folder.mkdir(parents=True, exist_ok=True)
    glob_parts = []

    def tokens():
        desc = f"image features ({split})"
        for x in pair_batches(pairs, encoder.config.preprocess, batch_size, workers, desc, progress):
            g, t = encode_pair_batch(encoder, x.to(device))
            glob_parts.append(g.float().cpu().numpy())
            yield t.cpu().numpy()

    tokens_mm = stream_to_npy(t_path, len(pairs), tokens(), split)
    tmp = g_path.with_suffix(f".tmp{os.getpid()}.npy")  # globals last, atomically: both present = complete
    np.save(tmp, np.concatenate(glob_parts))
    os.replace(tmp, g_path)
    return np.load(g_path), tokens_mm


def trunk_features(
    pairs: list[ChangePair],
    encoder,
    n_tail: int,
    cache_dir: Path,
    split: str,
    batch_size: int = 32,
    progress: bool = True,
    device: str = "cpu",
    workers: int = 1,
) -> np.ndarray:
    """float16 [N, 2, C, h, w] outputs of the encoder's frozen trunk (all but the last ``n_tail`` blocks), cached.

    Fine-tuning trains the tail on these: the trunk, most of the forward pass, runs once per image.
    """
    folder, key = image_cache_key(encoder, pairs, cache_dir, f"{split}-trunk{n_tail}")
    path = folder / f"{key}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    folder.mkdir(parents=True, exist_ok=True)
    from rsir.models.runtime import frozen_pass

    trunk = frozen_pass(encoder, f"trunk:{n_tail}")  # on the encoder's device, or ONNX Runtime

    def maps():
        desc = f"trunk features ({split})"
        for x in pair_batches(pairs, encoder.config.preprocess, batch_size, workers, desc, progress):
            m = trunk(x.flatten(0, 1))
            yield m.reshape(x.shape[0], 2, *m.shape[1:]).numpy()

    return stream_to_npy(path, len(pairs), maps(), split)


def text_features(captions: list[str], encoders, cache_dir: Path, split: str, progress: bool = True) -> np.ndarray:
    """float32 [M, Dtext] caption embeddings, cached; the text model is only loaded on a cache miss."""
    # fine-tuned text layers get their own key
    folder = Path(cache_dir) / "itsr" / f"text-{encoders.text_name.replace('/', '_')}-{encoders.text_cache_key}"
    path = folder / f"{split}-{digest(captions)}.npy"
    if path.is_file():
        return np.load(path)
    folder.mkdir(parents=True, exist_ok=True)
    vectors = encoders.text.encode(captions, progress=progress).numpy().astype(np.float32)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, vectors)
    os.replace(tmp, path)
    return vectors


def caption_features(
    archive: ChangeCaptionArchive, split: str, encoders, cache_dir: Path, progress: bool = True, unit: str = "pairs"
) -> SplitFeatures:
    """A split's pairs and caption embeddings, image features left out (None); ``encoders`` is a
    rsir.itsr.pipeline.Encoders. An empty split is an error naming its ``unit`` (pairs, images)."""
    pairs = archive.split(split).pairs
    if not pairs:
        raise ValueError(f"{archive.root}: split {split!r} has no {unit}")
    counts = np.array([len(p.captions) for p in pairs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    captions = [c for p in pairs for c in p.captions]
    text = text_features(captions, encoders, cache_dir, split, progress=progress)
    return SplitFeatures(pairs, None, None, text, np.repeat(np.arange(len(pairs)), counts), offsets)


def split_features(
    archive: ChangeCaptionArchive,
    split: str,
    encoders,
    cache_dir: Path,
    progress: bool = True,
    batch_size: int = 32,
    images: bool = True,
    token_stage: int = 0,
) -> SplitFeatures:
    """Features of one split; ``encoders`` is a rsir.itsr.pipeline.Encoders (image, text, device).

    ``images=False`` leaves the image features out (None): fine-tuning computes its own.
    ``token_stage`` N > 0: tokens from the cached trunk map (see encode_pair_batch), globals final.
    """
    # Text first: it is the cheaper pass, so an unavailable text model fails before minutes of images.
    feats = caption_features(archive, split, encoders, cache_dir, progress)
    if not images:
        return feats
    pairs = feats.pairs
    glob, tokens = image_features(
        pairs, encoders.image, cache_dir, split, batch_size, progress=progress, device=encoders.device
    )
    if token_stage:
        maps = trunk_features(
            pairs, encoders.image, token_stage, cache_dir, split, batch_size, progress, encoders.device
        )
        tokens = np.ascontiguousarray(map_tokens(maps))  # float16 [N, 2, h*w, C] in memory
    return replace(feats, globals_=glob, tokens=tokens)
