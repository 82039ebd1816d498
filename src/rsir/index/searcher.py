"""The one search path: an index folder's manifest + its store, answering filtered, paged searches in rows.

`rsir search`, the Python API (``rsir.cbir.indexing.search_page``) and `rsir serve` all call
``SearchIndex.page``; which store holds the vectors (FAISS files or Milvus) is the manifest's business.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsir.index.filters import NO_FILTERS, FilterColumns, Filters
from rsir.index.manifest import IndexManifest
from rsir.index.store import IndexStore, Page, backend_of


class SearchIndex:
    """An opened index. Knobs (``nprobe``, ``ef_search``, ``rerank``, ``batched``) go to the store that uses them;
    ``batched`` lets concurrent unfiltered searches of this process share one store call (the service)."""

    def __init__(self, folder: Path, **knobs) -> None:
        from rsir.index.faiss_index import recover_folder

        self.folder = Path(folder)
        recover_folder(self.folder)
        self.manifest = IndexManifest.read(self.folder)
        self.store: IndexStore = backend_of(self.manifest).open(self.folder, self.manifest, **knobs)
        columns = getattr(self.store, "columns", None)
        self.columns = columns or FilterColumns(self.manifest.labels, self.manifest.meta)
        self._row = {id_: i for i, id_ in enumerate(self.manifest.ids)}

    def __len__(self) -> int:
        return len(self.manifest.ids)

    def __getattr__(self, name: str):
        # store internals (a FAISS store's ``index``, ``vectors``, ``rerank``) for callers that tune or inspect
        # them directly; only reached for names SearchIndex itself lacks
        if name in ("index", "vectors", "rerank") and "store" in self.__dict__:
            try:
                return getattr(self.store, name)
            except AttributeError:
                pass
        raise AttributeError(f"{type(self).__name__} has no {name!r} (its store: {type(self.__dict__.get('store'))})")

    def row_of(self, item_id: str) -> int:
        if item_id not in self._row:
            raise KeyError(f"unknown id {item_id!r} (index holds {len(self)} items)")
        return self._row[item_id]

    def vector(self, row: int) -> np.ndarray:
        """The stored vector of a row, float32 [1, D]."""
        return self.store.vector(row)

    def available_filters(self) -> list[str]:
        return self.columns.available()

    def check_filters(self, filters: Filters) -> None:
        """Unknown labels are a mistake worth a clear error, not an empty result."""
        if filters.labels:
            known = {label for ls in self.columns.labels for label in ls}
            unknown = [lab for lab in filters.labels if lab not in known]
            if unknown:
                raise ValueError(f"label: unknown label(s) {unknown[:5]}")

    def page(
        self,
        query: np.ndarray,
        filters: Filters = NO_FILTERS,
        offset: int = 0,
        k: int = 10,
        exclude_row: int | None = None,
    ) -> Page:
        """Ranks offset+1 .. offset+k of the rows passing ``filters`` (``exclude_row`` left out), best first,
        and how many rows pass."""
        if k < 1 or offset < 0:
            raise ValueError("k must be >= 1 and offset >= 0")
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        return self.store.page(q, filters, offset, k, exclude_row)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Unfiltered top-k (scores, rows) of a batch of queries (evaluation, benchmarks)."""
        return self.store.search(np.ascontiguousarray(queries, dtype=np.float32), k)
