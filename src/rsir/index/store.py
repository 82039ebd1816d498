"""Where an index's vectors live: the store protocol, and the registry of stores (FAISS files, Milvus).

An index folder always holds ``manifest.json`` (what made the vectors, what each row is); its ``store``
record says which store holds the vectors and how to reach it. Rows are manifest positions everywhere:
a store answers searches in rows, and the one search path (``rsir.index.searcher.SearchIndex``) turns
them into pages for the CLI, the Python API and the web service alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the CLI imports this module for its help text: keep it free of numpy
    import numpy as np

    from rsir.index.filters import Filters
    from rsir.index.manifest import IndexManifest


class StoreUnavailable(ValueError):
    """A store cannot answer: its client library is missing, its server unreachable, or it refused a request."""


@dataclass
class Page:
    """One page of a ranked search: ``total`` rows pass the filters (the query item left out), ``hits`` are
    the (row, score) pairs of ranks offset+1 .. offset+k, best first."""

    total: int
    hits: list[tuple[int, float]] = field(default_factory=list)


def ranked_hits(hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Best first; equal scores (duplicate images are common in real archives) by row, so every store and
    every page agrees on the order of ties."""
    return sorted(hits, key=lambda hit: (-hit[1], hit[0]))


class IndexStore(Protocol):
    """An opened store: read side of an index."""

    def __len__(self) -> int: ...

    def vector(self, row: int) -> np.ndarray:
        """The stored vector of a row, float32 [1, D] (queries by item id)."""
        ...

    def page(self, query: np.ndarray, filters: Filters, offset: int, k: int, exclude_row: int | None) -> Page:
        """Ranks offset+1 .. offset+k among rows passing ``filters`` (without ``exclude_row``), and their count."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Unfiltered top-k (scores, rows) of a batch of queries; rows are -1 where fewer exist."""
        ...


class StoreBackend(Protocol):
    """Write side of a store, plus opening it. ``location`` is what follows ``KIND:`` in ``--store``."""

    kind: str

    def resolve_kind(self, index_type: str, n: int) -> str:
        """The index type this store builds for ``index_type`` (``auto`` resolved) at ``n`` items; unknown
        types raise ValueError (checked before any embedding)."""
        ...

    def fit(self, params, n: int, dim: int) -> tuple:
        """The parameters actually built for ``n`` vectors of ``dim`` (concrete index type), and a note
        when they differ from the request (e.g. IVF-PQ sized down to a small archive)."""
        ...

    def record(self, location: str, out: Path) -> dict:
        """The manifest's ``store`` record for a new index at ``out`` (kind, where, collection...)."""
        ...

    def build(self, out: Path, vectors: np.ndarray, manifest: IndexManifest, params, seed: int = 0) -> dict:
        """Write a new index (replacing any at ``out``); returns build facts (seconds, bytes per item...)."""
        ...

    def append(self, out: Path, old: IndexManifest, vectors: np.ndarray, new: IndexManifest) -> None:
        """Add ``vectors`` (rows len(old.ids)..) without touching existing rows; ``new`` lists all items."""
        ...

    def remove(self, out: Path, old: IndexManifest, keep: np.ndarray, new: IndexManifest) -> None:
        """Drop the rows not in ``keep`` (sorted row numbers of ``old``); ``new`` lists the kept items."""
        ...

    def discard(self, record: dict) -> None:
        """Free what a replaced index held outside its folder (a Milvus collection); no-op for FAISS."""
        ...

    def open(self, folder: Path, manifest: IndexManifest, **knobs) -> IndexStore: ...


def backends() -> dict[str, StoreBackend]:
    from rsir.index.faiss_store import FaissBackend
    from rsir.index.milvus_store import MilvusBackend

    return {b.kind: b for b in (FaissBackend(), MilvusBackend())}


STORE_HELP = "faiss (default: files in --out), milvus:FILE.db (Milvus Lite, embedded) or milvus:http://HOST:19530"


def parse_store(spec: str) -> tuple[StoreBackend, str]:
    """``faiss`` | ``milvus:FILE.db`` | ``milvus:http://HOST:PORT`` -> (backend, location)."""
    kind, _, location = spec.partition(":")
    known = backends()
    if kind not in known:
        raise ValueError(f"unknown store {spec!r}; choose {STORE_HELP}")
    return known[kind], location


def backend_of(manifest: IndexManifest) -> StoreBackend:
    return backend_of_record(manifest.store)


def backend_of_record(record: dict) -> StoreBackend:
    kind = record.get("kind", "faiss")
    known = backends()
    if kind not in known:
        raise ValueError(f"index store {kind!r} is not known to this rsir version")
    return known[kind]
