"""Extraction throughput through the real embed path vs forward-only throughput of the same encoder.

The ratio ``extract / forward`` is the pipeline overhead (decode, resize, batching, shard writes): 1.0
means the encoder's forward pass is the only cost. Machines are often shared, so ``compare_throughput``
runs the two measurements back to back, several times, and takes the median of the per-repeat ratios.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from rsir.data.items import Archive


@dataclass
class ThroughputReport:
    n_images: int
    batch_size: int
    workers: int
    torch_threads: int
    extract_images_per_s: float
    forward_images_per_s: float
    extract_ratio: float
    repeats: list[dict]
    embeddings: object = field(default=None, repr=False)  # the last extraction's output (not reported)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "embeddings"}


def spread(archive: Archive, n_images: int) -> Archive:
    """``n_images`` items spread evenly over the archive (every class of a sorted scene archive)."""
    n = min(n_images, len(archive))
    return archive.subset(np.linspace(0, len(archive) - 1, n).round().astype(int).tolist())


def decoded_inputs(archive: Archive, encoder, n: int):
    """Encoder-ready tensors ``[n, C, S, S]`` of real archive images, decoded before any timing."""
    import torch

    from rsir.data.images import load_image
    from rsir.models.preprocess import prepare

    prep = encoder.config.preprocess
    return torch.stack([prepare(load_image(it.path), prep) for it in spread(archive, n).items])


def forward_throughput(encoder, n: int, batch_size: int = 32, inputs=None) -> float:
    """Images/s of the encoder's ``encode`` pass alone, on its runtime (rsir.models.runtime), on pre-decoded
    tensors (random ones unless ``inputs`` given)."""
    import torch

    from rsir.models.runtime import frozen_pass

    if inputs is None:
        size = encoder.config.preprocess.size
        inputs = torch.randn(min(n, batch_size), encoder.config.preprocess.in_channels, size, size)
    batches = [inputs[(s % len(inputs)) : (s % len(inputs)) + batch_size] for s in range(0, n, batch_size)]
    encode = frozen_pass(encoder)
    encode(batches[0][:2])  # first call allocates and picks kernels
    start = time.perf_counter()
    done = 0
    for batch in batches:
        batch = batch[: n - done]
        encode(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def extraction_throughput(
    archive: Archive, encoder, n_images: int, *, batch_size: int = 32, workers: int = 1, engine: str = "local"
) -> float:
    """Images/s of the real ``rsir index`` embed path (files -> decode -> batches -> encoder -> shards),
    from an empty work folder."""
    return _extract(archive, encoder, n_images, batch_size, workers, engine)[0]


def _extract(archive: Archive, encoder, n_images: int, batch_size: int, workers: int, engine: str):
    from rsir.embed.local import embed_archive

    part = spread(archive, n_images)
    with tempfile.TemporaryDirectory(prefix="rsir-bench-") as tmp:
        start = time.perf_counter()
        if engine == "ray":
            from rsir.embed.ray_engine import embed_archive_ray

            emb = embed_archive_ray(part, encoder, Path(tmp), batch_size=batch_size, progress=False)
        else:
            emb = embed_archive(part, encoder, Path(tmp), batch_size=batch_size, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    return len(part) / seconds, emb


def compare_throughput(
    archive: Archive,
    encoder,
    n_images: int,
    *,
    batch_size: int = 32,
    workers: int = 1,
    repeats: int = 3,
) -> ThroughputReport:
    """Forward-only and extraction throughput measured back to back ``repeats`` times (medians)."""
    import torch

    inputs = decoded_inputs(archive, encoder, min(n_images, 4 * batch_size))
    rows = []
    for _ in range(repeats):
        fwd = forward_throughput(encoder, n_images, batch_size, inputs)
        ext, emb = _extract(archive, encoder, n_images, batch_size, workers, "local")
        rows.append({"forward": round(fwd, 2), "extract": round(ext, 2), "ratio": round(ext / fwd, 3)})
    return ThroughputReport(
        n_images=min(n_images, len(archive)),
        batch_size=batch_size,
        workers=workers,
        torch_threads=torch.get_num_threads(),
        extract_images_per_s=round(statistics.median(r["extract"] for r in rows), 2),
        forward_images_per_s=round(statistics.median(r["forward"] for r in rows), 2),
        extract_ratio=round(statistics.median(r["ratio"] for r in rows), 3),
        repeats=rows,
        embeddings=emb,
    )


def ray_vs_local(archive: Archive, encoder, n_images: int, *, batch_size: int = 32) -> dict:
    """Seconds of the local and the Ray engine on the same ``n_images`` (a local Ray is started first and
    its start-up is reported apart: a user pays it once per session, not per archive)."""
    from rsir.embed.ray_engine import connect

    start = time.perf_counter()
    connect()
    ray_start_s = time.perf_counter() - start
    n = min(n_images, len(archive))
    local = n / _extract(archive, encoder, n_images, batch_size, 1, "local")[0]
    ray = n / _extract(archive, encoder, n_images, batch_size, 1, "ray")[0]
    return {
        "n_images": n,
        "local_s": round(local, 2),
        "ray_s": round(ray, 2),
        "ray_start_s": round(ray_start_s, 2),
        "ray_over_local": round(ray / local, 3),
    }
