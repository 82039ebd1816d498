"""FAISS indexes over normalised embeddings: exact by default, IVF-PQ or HNSW by option; atomic save/load."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsir.index.manifest import MANIFEST, IndexManifest

INDEX_FILE = "index.faiss"
VECTORS_FILE = "vectors.npy"
INDEX_TYPES = ("flat", "ivfpq", "hnsw", "auto")


@dataclass(frozen=True)
class IndexParams:
    """Recall/speed knobs. ``nlist``/``m`` default from the data size; ``nprobe``/``ef_search`` at query time."""

    index_type: str = "flat"
    nlist: int | None = None
    pq_m: int | None = None
    nbits: int = 8
    nprobe: int = 32
    hnsw_m: int = 32
    ef_search: int = 128
    train_sample: int = 100_000


def choose_index_type(n: int) -> str:
    """Exact search stays fast up to ~200k vectors; past that an approximate index pays off."""
    return "flat" if n < 200_000 else "ivfpq"


def _pq_m(dim: int) -> int:
    for m in (64, 48, 32, 16, 8, 4, 2, 1):
        if dim % m == 0 and dim // m >= 4:
            return m
    return 1


def build_index(vectors: np.ndarray, params: IndexParams = IndexParams(), seed: int = 0):
    """Inner-product index (cosine on normalised vectors), filled in shards after training on a sample."""
    import faiss

    n, dim = vectors.shape
    kind = choose_index_type(n) if params.index_type == "auto" else params.index_type
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = params.ef_search
    elif kind == "ivfpq":
        nlist = params.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(
            quantizer, dim, nlist, params.pq_m or _pq_m(dim), params.nbits, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, size=min(n, params.train_sample), replace=False)]
        index.train(np.ascontiguousarray(sample))
        index.nprobe = params.nprobe
    else:
        raise ValueError(f"unknown index type {params.index_type!r}; choose from {INDEX_TYPES}")
    for start in range(0, n, 65_536):
        index.add(np.ascontiguousarray(vectors[start : start + 65_536]))
    return index


def save_index(folder: Path, index, vectors: np.ndarray, manifest: IndexManifest) -> None:
    """Write index, vectors and manifest to a temp folder, then swap it in: readers never see half an index."""
    import faiss

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    faiss.write_index(index, str(tmp / INDEX_FILE))
    np.save(tmp / VECTORS_FILE, vectors)
    (tmp / MANIFEST).write_text(manifest.to_json())
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old{os.getpid()}")
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class SearchIndex:
    """A loaded index: manifest + FAISS index + the stored vectors (for queries by id)."""

    def __init__(self, folder: Path) -> None:
        import faiss

        self.folder = Path(folder)
        self.manifest = IndexManifest.read(self.folder)
        self.index = faiss.read_index(str(self.folder / INDEX_FILE))
        self.vectors = np.load(self.folder / VECTORS_FILE, mmap_mode="r")
        self._row = {id_: i for i, id_ in enumerate(self.manifest.ids)}

    def __len__(self) -> int:
        return self.index.ntotal

    def row_of(self, item_id: str) -> int:
        if item_id not in self._row:
            raise KeyError(f"unknown id {item_id!r} (index holds {len(self)} items)")
        return self._row[item_id]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, rows
