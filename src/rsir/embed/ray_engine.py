"""Embed an archive on Ray Data: decode in CPU tasks, encode in an actor pool that holds the encoder.

Same output as :func:`rsir.embed.local.embed_archive` (up to float tolerance) and the same shard files
in the same work folder, so a run resumes whichever engine wrote the shards. Ray is an optional extra
(``pip install 'rsir[ray]'``); it is imported inside functions only.

On a cluster, start Ray there (``ray start --head`` / ``ray start --address HEAD:6379``), install rsir
on every node, and pass ``address="auto"`` (on a node) or ``"ray://HEAD:10001"`` (Ray Client).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsir.data.items import Archive
from rsir.embed.local import Embeddings, collect_shards, load_input, shard_path, write_shard


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run. ``None`` = derived from the cluster's CPUs (see :func:`plan`)."""

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    torch_threads: int | None = None


class EngineUnavailable(RuntimeError):
    """The Ray engine cannot run here (Ray Data not installed, or no cluster at the given address)."""


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise EngineUnavailable(
            "the ray engine needs Ray Data: pip install 'rsir[ray]' (or pip install 'ray[data]')"
        ) from err
    return ray


def connect(address: str | None = None, **init_kwargs) -> None:
    """Join the Ray at ``address`` (``None``: an already-initialised one, else a new local one)."""
    ray = require_ray()
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, log_to_driver=False, **init_kwargs)
    except ConnectionError as err:
        raise EngineUnavailable(f"no Ray cluster at {address!r}: {err}") from err


def plan(options: RayOptions, cluster_cpus: float) -> tuple[int, int]:
    """(max actors, torch threads per actor).

    Each actor leaves room for one decode task beside it, so on a 2-CPU machine one actor runs next to
    one decoder; its forward pass uses the cores of its share (a task's decode mostly waits on I/O).
    """
    actors = options.actors or max(1, int(cluster_cpus // (options.cpus_per_actor + 1)))
    threads = options.torch_threads or max(1, round(cluster_cpus / actors))
    return actors, threads


def _decode_batch(batch: dict, prep) -> dict:
    pairs = [load_input(Path(p), prep) for p in batch["path"]]
    return {
        "row": batch["row"],
        "x": np.stack([x.numpy() for x, _ in pairs]),
        "error": np.array([e for _, e in pairs], dtype=object),
    }


class _Encode:
    """Actor: loads the encoder once, then turns decoded batches into vectors."""

    def __init__(self, encoder_ref, threads: int, device: str) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.device = device
        self.encoder = ray.get(encoder_ref[0]).to(device).eval()
        from rsir.models.runtime import frozen_pass

        self.encode = frozen_pass(self.encoder)  # the driver's runtime choice travels with the encoder

    def __call__(self, batch: dict) -> dict:
        vectors = self.encode(self.torch.from_numpy(np.ascontiguousarray(batch["x"]))).numpy()
        return {"row": batch["row"], "vector": vectors, "error": batch["error"]}


def _missing_rows(n: int, shard_size: int, workdir: Path) -> list[int]:
    return [
        r
        for start in range(0, n, shard_size)
        if not shard_path(workdir, start).exists()
        for r in range(start, min(start + shard_size, n))
    ]


def _pipeline(archive: Archive, rows: list[int], encoder, batch_size: int, options: RayOptions):
    """The lazy dataset: rows -> decoded tensors (tasks) -> vectors (actor pool)."""
    import ray

    actors, threads = plan(options, ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    prep = encoder.config.preprocess
    items = [{"row": r, "path": str(archive.items[r].path)} for r in rows]
    blocks = max(1, math.ceil(len(items) / (4 * batch_size)))  # small blocks keep the stream flowing
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    ds = ds.map_batches(
        _decode_batch,
        batch_size=batch_size,
        batch_format="numpy",
        fn_kwargs={"prep": prep},
        num_cpus=1,
        # A worker with torch imported plus two decoded batches, for the scheduler. Declaring it also keeps
        # decoding out of the actors (ops with different resources are not fused): a GPU never waits on JPEGs.
        memory=(320 << 20) + 2 * batch_size * 4 * prep.in_channels * prep.size**2,
    )
    device = "cuda" if options.gpus_per_actor > 0 else "cpu"
    return ds.map_batches(
        _Encode,
        batch_size=batch_size,
        batch_format="numpy",
        # A list keeps Ray from resolving the ref before the actor asks for it.
        fn_constructor_kwargs={"encoder_ref": [ray.put(encoder.cpu())], "threads": threads, "device": device},
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
        num_cpus=options.cpus_per_actor,
        num_gpus=options.gpus_per_actor or None,
    )


class _ShardWriter:
    """Collects streamed rows (in any order) and writes each shard once all its rows are in."""

    def __init__(self, n: int, shard_size: int, workdir: Path, rows: list[int], runtime: str = "torch") -> None:
        self.n, self.shard_size, self.workdir, self.runtime = n, shard_size, workdir, runtime
        self.pending: dict[int, dict[int, tuple[np.ndarray, str]]] = {}
        self.expected: dict[int, int] = {}
        for r in rows:
            start = r - r % shard_size
            self.expected[start] = self.expected.get(start, 0) + 1

    def add(self, row: int, vector: np.ndarray, error: str) -> None:
        start = row - row % self.shard_size
        got = self.pending.setdefault(start, {})
        got[row] = (vector, error)
        if len(got) == self.expected[start]:
            order = sorted(got)
            write_shard(
                shard_path(self.workdir, start),
                np.stack([got[r][0] for r in order]).astype(np.float32),
                [got[r][1] for r in order],
                self.runtime,
            )
            del self.pending[start]


def embed_archive_ray(
    archive: Archive,
    encoder,
    workdir: Path,
    *,
    batch_size: int = 32,
    shard_size: int = 1024,
    strict: bool = False,
    progress: bool = True,
    options: RayOptions = RayOptions(),
) -> Embeddings:
    """Embed every item on Ray (resuming from shards in ``workdir``); same contract as the local engine."""
    from tqdm.auto import tqdm

    workdir.mkdir(parents=True, exist_ok=True)
    n = len(archive)
    rows = _missing_rows(n, shard_size, workdir)
    if rows:
        connect(options.address)
        import ray

        ray.data.DataContext.get_current().enable_progress_bars = False
        from rsir.models.runtime import frozen_pass

        # Resolved (and exported) here once, so actors on this machine find the cached ONNX file.
        writer = _ShardWriter(n, shard_size, workdir, rows, frozen_pass(encoder).runtime)
        bar = tqdm(total=n, initial=n - len(rows), desc="embedding (ray)", unit="img", disable=not progress)
        dataset = _pipeline(archive, rows, encoder, batch_size, options)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for row, vector, error in zip(batch["row"], batch["vector"], batch["error"], strict=True):
                writer.add(int(row), vector, str(error or ""))
            bar.update(len(batch["row"]))
        bar.close()
    return collect_shards(archive, workdir, shard_size, strict)


def ray_archive_features(archive: Archive, encoder, *, cache_dir: Path | None = None, **kwargs) -> Embeddings:
    """Like :func:`rsir.embed.features.archive_features` (same cache key and folder) on the Ray engine."""
    from rsir.embed.cache import cache_root, embedding_key
    from rsir.models.runtime import cache_variant

    key = embedding_key(archive.root, archive.ids, encoder.config, encoder.weights_hash, variant=cache_variant(encoder))
    return embed_archive_ray(archive, encoder, (cache_dir or cache_root() / "features") / key, **kwargs)
