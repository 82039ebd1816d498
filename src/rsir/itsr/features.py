"""Frozen-encoder features of a change-caption split, computed once and cached.

Per split: image globals ``float32 [N, 2, D]`` and patch tokens ``float16 [N, 2, L, Dt]`` (before, after),
and caption embeddings ``float32 [M, Dtext]``. Cache files are keyed by encoder name + weights hash +
preprocessing and by the pairs (ids, image sizes and mtimes) or caption texts, so a regenerated dataset
or another encoder never reuses stale features. Tokens are memory-mapped, not loaded, until needed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsir.data.changecap import ChangeCaptionArchive, ChangePair, load_pair_image


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


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def pairs_digest(pairs: list[ChangePair]) -> str:
    stamp = []
    for p in pairs:
        b, a = p.before.stat(), p.after.stat()
        stamp.append([p.id, b.st_size, b.st_mtime_ns, a.st_size, a.st_mtime_ns])
    return _digest(stamp)


def _uses_mean_tokens(encoder) -> bool:
    from rsir.models.encoders import ImageEncoder

    # The default encode() is the token mean: reuse the tokens instead of a second forward pass.
    return type(encoder).encode is ImageEncoder.encode


def prepared_pair(pair: ChangePair, preprocess) -> torch.Tensor:
    """[2, C, S, S] encoder input for one pair."""
    from rsir.models.preprocess import prepare

    return torch.stack([prepare(load_pair_image(p), preprocess) for p in (pair.before, pair.after)])


@torch.inference_mode()
def encode_pair_batch(encoder, x: torch.Tensor, token_stage: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, 2, C, S, S] -> (globals [B, 2, D], tokens [B, 2, L, Dt]) with one shared encoder.

    ``token_stage`` N > 0: the tokens are the map after all but the encoder's last N blocks (finer, earlier:
    14 x 14 x 112 for N = 5 on EfficientNet-Lite0) instead of the final ones; the globals stay final."""
    from rsir.models.runtime import frozen_pass

    b = x.shape[0]
    flat = x.flatten(0, 1)
    tokens = frozen_pass(encoder, "tokens")(flat)
    glob = tokens.mean(1) if _uses_mean_tokens(encoder) else frozen_pass(encoder, "encode")(flat)
    if token_stage:
        tokens = map_tokens(frozen_pass(encoder, f"trunk:{token_stage}")(flat))
    return glob.reshape(b, 2, -1), tokens.reshape(b, 2, *tokens.shape[1:])


def map_tokens(maps):
    """Feature maps [..., C, h, w] -> tokens [..., h*w, C] (torch or numpy, row-major positions)."""
    *lead, c, h, w = maps.shape
    flat = maps.reshape(*lead, c, h * w)
    return flat.transpose(-1, -2) if isinstance(flat, torch.Tensor) else np.swapaxes(flat, -1, -2)


class _PairInputs(torch.utils.data.Dataset):
    def __init__(self, pairs: list[ChangePair], preprocess) -> None:
        self.pairs, self.preprocess = pairs, preprocess

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return prepared_pair(self.pairs[i], self.preprocess)


def _pair_cache(encoder, pairs: list[ChangePair], cache_dir: Path, name: str) -> tuple[Path, str]:
    """(folder, key) of cached image arrays: the folder names the encoder and its weights, the key ``name``
    plus a digest of the pairs (ids, sizes, mtimes) and the preprocessing."""
    from rsir.models.runtime import cache_variant

    cfg = encoder.config
    folder = Path(cache_dir) / "itsr" / f"{cfg.name.replace('/', '_').replace(':', '_')}-{encoder.weights_hash}"
    stamp = [pairs_digest(pairs), cfg.to_dict()] + ([cache_variant(encoder)] if cache_variant(encoder) else [])
    return folder, f"{name}-{_digest(stamp)}"


def _stream_to_npy(path: Path, n: int, batches, split: str) -> np.ndarray:
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


def _pair_batches(pairs: list[ChangePair], preprocess, batch_size: int, workers: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    # One decode worker (a process) by default: images are decoded while the encoder runs on the last batch.
    loader = torch.utils.data.DataLoader(_PairInputs(pairs, preprocess), batch_size=batch_size, num_workers=workers)
    return tqdm(loader, desc=desc, disable=not progress, unit="batch")


def image_features(
    pairs: list[ChangePair],
    encoder,
    cache_dir: Path,
    split: str,
    batch_size: int = 32,
    workers: int = 1,
    progress: bool = True,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """(globals float32 [N, 2, D], tokens float16 memmap [N, 2, L, Dt]) for ``pairs``, cached."""
    folder, key = _pair_cache(encoder, pairs, cache_dir, split)
    g_path, t_path = folder / f"{key}.globals.npy", folder / f"{key}.tokens.npy"
    if g_path.is_file() and t_path.is_file():
        return np.load(g_path), np.load(t_path, mmap_mode="r")
    folder.mkdir(parents=True, exist_ok=True)
    glob_parts = []

    def tokens():
        desc = f"image features ({split})"
        for x in _pair_batches(pairs, encoder.config.preprocess, batch_size, workers, desc, progress):
            g, t = encode_pair_batch(encoder, x.to(device))
            glob_parts.append(g.float().cpu().numpy())
            yield t.cpu().numpy()

    tokens_mm = _stream_to_npy(t_path, len(pairs), tokens(), split)
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
    folder, key = _pair_cache(encoder, pairs, cache_dir, f"{split}-trunk{n_tail}")
    path = folder / f"{key}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    folder.mkdir(parents=True, exist_ok=True)
    from rsir.models.runtime import frozen_pass

    trunk = frozen_pass(encoder, f"trunk:{n_tail}")  # on the encoder's device, or ONNX Runtime

    def maps():
        desc = f"trunk features ({split})"
        for x in _pair_batches(pairs, encoder.config.preprocess, batch_size, workers, desc, progress):
            m = trunk(x.flatten(0, 1))
            yield m.reshape(x.shape[0], 2, *m.shape[1:]).numpy()

    return _stream_to_npy(path, len(pairs), maps(), split)


def text_features(captions: list[str], encoders, cache_dir: Path, split: str, progress: bool = True) -> np.ndarray:
    """float32 [M, Dtext] caption embeddings, cached; the text model is only loaded on a cache miss."""
    key = getattr(encoders, "text_cache_key", encoders.text_hash)  # fine-tuned text layers: their own key
    folder = Path(cache_dir) / "itsr" / f"text-{encoders.text_name.replace('/', '_')}-{key}"
    path = folder / f"{split}-{_digest(captions)}.npy"
    if path.is_file():
        return np.load(path)
    folder.mkdir(parents=True, exist_ok=True)
    vectors = encoders.text.encode(captions, progress=progress).numpy().astype(np.float32)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, vectors)
    os.replace(tmp, path)
    return vectors


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
    pairs = archive.split(split).pairs
    if not pairs:
        raise ValueError(f"{archive.root}: split {split!r} has no pairs")
    counts = np.array([len(p.captions) for p in pairs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    captions = [c for p in pairs for c in p.captions]
    # Text first: it is the cheaper pass, so an unavailable text model fails before minutes of images.
    text = text_features(captions, encoders, cache_dir, split, progress=progress)
    glob = tokens = None
    if images:
        glob, tokens = image_features(
            pairs, encoders.image, cache_dir, split, batch_size, progress=progress, device=encoders.device
        )
        if token_stage:
            maps = trunk_features(
                pairs, encoders.image, token_stage, cache_dir, split, batch_size, progress, encoders.device
            )
            tokens = np.ascontiguousarray(map_tokens(maps))  # float16 [N, 2, h*w, C] in memory
    return SplitFeatures(pairs, glob, tokens, text, np.repeat(np.arange(len(pairs)), counts), offsets)
