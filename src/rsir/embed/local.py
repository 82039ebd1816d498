"""Embed an archive on this machine: batched, with a progress bar, resumable from shards on disk.

A run writes one ``.npz`` shard per ``shard_size`` items into its work folder; a rerun after a kill
reuses the finished shards and only embeds the rest. Images that fail to decode are reported, not fatal
(unless ``strict``).
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rsir.data.items import Archive, ImageError, SkippedFile
from rsir.embed.cache import atomic_write_bytes
from rsir.models.config import Preprocess
from rsir.models.encoders import ImageEncoder
from rsir.models.runtime import FrozenPass, frozen_pass


@dataclass
class Embeddings:
    """float32 [N, D] L2-normalised vectors parallel to ``ids``; ``failed`` lists items that could not be read."""

    ids: list[str]
    vectors: np.ndarray
    failed: list[SkippedFile] = field(default_factory=list)
    runtime: str = ""  # what ran the encoder: torch, onnx, or both joined by "+" (a run resumed across runtimes)


class ArchiveImages(torch.utils.data.Dataset):
    def __init__(self, archive: Archive, indices: list[int], encoder: ImageEncoder) -> None:
        self.items = [archive.items[i] for i in indices]
        self.prep = encoder.config.preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return load_input(self.items[i].path, self.prep)


def load_input(path: Path, prep: Preprocess) -> tuple[torch.Tensor, str]:
    """Decode + prepare one item for the encoder; an unreadable one gives zeros and its error (never raises)."""
    from rsir.data.images import load_image
    from rsir.models.preprocess import prepare

    try:
        return prepare(load_image(path), prep), ""
    except (ImageError, ValueError, OSError) as err:
        return torch.zeros(prep.in_channels, prep.size, prep.size), str(err) or type(err).__name__


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def thread_batches(dataset: ArchiveImages, batch_size: int, workers: int) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """Batches decoded by ``workers`` threads, up to ``workers + 1`` batches ahead (0: in this thread).

    Beside ONNX Runtime, which runs outside the GIL as JPEG decoding and torch's resize do, threads overlap
    decoding with inference without a worker process: no batch is copied through shared memory and no second
    interpreter is held in memory.
    """

    def load(start: int) -> tuple[torch.Tensor, list[str]]:
        pairs = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        return torch.stack([x for x, _ in pairs]), [e for _, e in pairs]

    starts = iter(range(0, len(dataset), batch_size))
    if workers <= 0:
        yield from map(load, starts)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="rsir-decode")
    try:
        ahead = deque(pool.submit(load, s) for s in islice(starts, workers + 1))
        while ahead:
            batch = ahead.popleft().result()
            ahead.extend(pool.submit(load, s) for s in islice(starts, 1))
            yield batch
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _embed_shard(
    encode: FrozenPass, dataset: ArchiveImages, batch_size: int, workers: int, bar: tqdm
) -> tuple[np.ndarray, list[str]]:
    if encode.runtime == "torch":  # eager torch: decode in worker processes, away from torch's own threads
        batches = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    else:
        batches = thread_batches(dataset, batch_size, workers)
    out, errors = [], []
    for x, errs in batches:
        out.append(encode(x).numpy())
        errors.extend(errs)
        bar.update(len(errs))
    return np.concatenate(out), errors


def shard_path(workdir: Path, start: int) -> Path:
    """The shard holding items ``start .. start + shard_size - 1`` (the same layout for every engine)."""
    return workdir / f"shard_{start:09d}.npz"


def write_shard(path: Path, vectors: np.ndarray, errors: list[str], runtime: str = "torch") -> None:
    """One row per item of the shard; a non-empty error marks an unreadable item (its row is unused)."""
    buf = io.BytesIO()
    np.savez(buf, vectors=vectors, errors=np.array(errors, dtype=str), runtime=np.array(runtime))
    atomic_write_bytes(path, buf.getvalue())


def collect_shards(archive: Archive, workdir: Path, shard_size: int, strict: bool) -> Embeddings:
    """Read every shard of a finished run, in item order, into :class:`Embeddings`."""
    parts, errors, runtimes = [], [], set()
    for start in range(0, len(archive), shard_size):
        with np.load(shard_path(workdir, start)) as data:
            parts.append(data["vectors"])
            errors.extend(str(e) for e in data["errors"])
            runtimes.add(str(data["runtime"]) if "runtime" in data else "torch")  # older shards: eager torch
    emb = _collect(archive, np.concatenate(parts) if parts else np.zeros((0, 0), np.float32), errors, strict)
    emb.runtime = "+".join(sorted(runtimes))
    return emb


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
    done = sum(min(shard_size, n - s) for s in starts if shard_path(workdir, s).exists())
    bar = tqdm(total=n, initial=done, desc="embedding", unit="img", disable=not progress)
    encode = None
    for start in starts:
        shard = shard_path(workdir, start)
        if not shard.exists():
            encode = encode or frozen_pass(encoder, "encode")  # resolved only when there is work to do
            dataset = ArchiveImages(archive, list(range(start, min(start + shard_size, n))), encoder)
            write_shard(shard, *_embed_shard(encode, dataset, batch_size, workers, bar), encode.runtime)
    bar.close()
    return collect_shards(archive, workdir, shard_size, strict)


def _collect(archive: Archive, vectors: np.ndarray, errors: list[str], strict: bool) -> Embeddings:
    bad = [i for i, e in enumerate(errors) if e]
    failed = [SkippedFile(archive.items[i].path, errors[i]) for i in bad]
    if strict and failed:
        raise ImageError("unreadable images (strict): " + "; ".join(f"{f.path}: {f.reason}" for f in failed[:10]))
    keep = np.array([not e for e in errors], dtype=bool)
    ids = [it.id for it, k in zip(archive.items, keep, strict=True) if k]
    return Embeddings(ids, normalise(vectors[keep]), failed)
