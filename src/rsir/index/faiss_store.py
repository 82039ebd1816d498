"""The FAISS store: ``index.faiss`` + ``vectors.npy`` next to the manifest, swapped in atomically."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rsir.index.faiss_index import (
    INDEX_FILE,
    INDEX_TYPES,
    VECTORS_FILE,
    IndexParams,
    build_index,
    choose_index_type,
    fit_params,
    save_index,
    search_index,
    set_search_params,
)
from rsir.index.filters import FilterColumns, Filters
from rsir.index.manifest import IndexManifest
from rsir.index.store import Page, ranked_hits


class FaissStore:
    """A loaded FAISS index + the stored vectors (queries by id, IVF-PQ re-ranking); filters become a row mask
    applied inside FAISS (an id selector), so filtered and unfiltered searches draw and re-rank candidates
    the same way. Query-time knobs default to what the index was built with and can be overridden."""

    def __init__(
        self,
        folder: Path,
        manifest: IndexManifest,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        rerank: int | None = None,
        batched: bool = False,
    ) -> None:
        import faiss

        self.index = faiss.read_index(str(Path(folder) / INDEX_FILE))
        self.vectors = np.load(Path(folder) / VECTORS_FILE, mmap_mode="r")
        built = manifest.params
        set_search_params(
            self.index, nprobe=nprobe or built.get("nprobe"), ef_search=ef_search or built.get("ef_search")
        )
        is_pq = manifest.index_type == "ivfpq"
        self.rerank = (rerank if rerank is not None else built.get("rerank", IndexParams.rerank)) if is_pq else 0
        self.columns = FilterColumns(manifest.labels, manifest.meta)
        self.batcher = None
        if batched:
            from rsir.index.batching import SearchBatcher

            self.batcher = SearchBatcher(self.search)

    def __len__(self) -> int:
        return self.index.ntotal

    def vector(self, row: int) -> np.ndarray:
        return np.asarray(self.vectors[row], dtype=np.float32)[None]

    def search(self, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return search_index(self.index, queries, k, self.vectors, self.rerank, mask)

    def page(self, query: np.ndarray, filters: Filters, offset: int, k: int, exclude_row: int | None) -> Page:
        n = len(self)
        mask = self.columns.mask(filters) if filters.active else None
        total = n if mask is None else int(mask.sum())
        if exclude_row is not None and (mask is None or mask[exclude_row]):
            total -= 1
        # one rank more than the page shows, so a tie at its edge is settled by ``ranked_hits``, as in every store
        need = min(n, offset + k + 1 + (exclude_row is not None))
        if need <= 0 or total <= 0:
            return Page(max(total, 0))
        q = np.ascontiguousarray(query, dtype=np.float32)
        if mask is not None:
            scores, rows = self.search(q, need, mask)
        elif self.batcher is not None:
            scores, rows = self.batcher.search(q, need)
        else:
            scores, rows = self.search(q, need)
        hits = [(int(r), float(s)) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0 and r != exclude_row]
        return Page(total, ranked_hits(hits)[offset : offset + k])


class FaissBackend:
    """Builds, grows and shrinks FAISS index folders; every write swaps a complete folder in."""

    kind = "faiss"

    def resolve_kind(self, index_type: str, n: int) -> str:
        if index_type not in INDEX_TYPES:
            raise ValueError(f"unknown index type {index_type!r}; choose from {INDEX_TYPES}")
        return choose_index_type(n) if index_type == "auto" else index_type

    def fit(self, params: IndexParams, n: int, dim: int) -> tuple[IndexParams, str]:
        return fit_params(n, dim, params)

    def record(self, location: str, out: Path) -> dict:
        if location:
            raise ValueError("the faiss store lives in --out itself; it takes no location (use plain `faiss`)")
        return {"kind": self.kind}

    def build(self, out: Path, vectors: np.ndarray, manifest: IndexManifest, params, seed: int = 0) -> dict:
        start = time.perf_counter()
        index = build_index(vectors, IndexParams(**{**params.__dict__, "index_type": manifest.index_type}), seed)
        seconds = time.perf_counter() - start
        save_index(out, index, vectors, manifest)
        return {"build_seconds": seconds, "index_bytes": (Path(out) / INDEX_FILE).stat().st_size}

    def _load(self, out: Path):
        import faiss

        return faiss.read_index(str(Path(out) / INDEX_FILE)), np.load(Path(out) / VECTORS_FILE, mmap_mode="r")

    def append(self, out: Path, old: IndexManifest, vectors: np.ndarray, new: IndexManifest) -> None:
        # Existing rows keep their codes and graph links; an IVF-PQ index keeps its trained lists and
        # codebooks (new items are encoded with them, nothing is retrained).
        index, stored = self._load(out)
        if index.ntotal != len(old.ids):
            raise ValueError(f"{out}: index holds {index.ntotal} rows, its manifest {len(old.ids)}")
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        save_index(out, index, np.concatenate([np.asarray(stored), vectors.astype(np.float32)]), new)

    def remove(self, out: Path, old: IndexManifest, keep: np.ndarray, new: IndexManifest) -> None:
        # Rows are manifest positions, so the kept vectors are re-added in order to the emptied index: no
        # re-embedding and no retraining (HNSW cannot delete in place; flat and IVF would renumber anyway).
        index, stored = self._load(out)
        kept = np.asarray(stored[keep], dtype=np.float32)
        index.reset()
        for start in range(0, len(kept), 65_536):
            index.add(np.ascontiguousarray(kept[start : start + 65_536]))
        save_index(out, index, kept, new)

    def discard(self, record: dict) -> None:
        pass  # the folder swap already replaced the files

    def open(self, folder: Path, manifest: IndexManifest, **knobs) -> FaissStore:
        return FaissStore(folder, manifest, **knobs)
