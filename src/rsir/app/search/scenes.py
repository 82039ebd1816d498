"""A loaded scene index as the search service uses it: labels, metadata and query embedding around the one
search path, through the public API (:class:`rsir.api_index.Index`, shared with `rsir search`)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from rsir.index.filters import Filters


class SceneGallery:
    """Index + manifest of single scenes (``rsir index`` output)."""

    def __init__(self, index_dir: str | Path, runtime: str = "auto") -> None:
        from rsir.api_index import Index

        # batched: concurrent requests of this worker share one store call (same function, same answers)
        self.api = Index(index_dir, runtime=runtime, batched=True)
        self.index = self.api.searcher
        self.manifest = self.index.manifest
        self.root = Path(self.manifest.archive_root)
        self._labels = self.index.columns.labels

    def __len__(self) -> int:
        return len(self.index)

    @property
    def batcher(self):
        """The FAISS store's batcher of concurrent unfiltered searches (None for stores that batch themselves)."""
        return getattr(self.index.store, "batcher", None)

    # ------------------------------------------------------------ metadata

    def label_counts(self) -> list[tuple[str, int]]:
        counts = Counter(label for ls in self._labels for label in ls)
        return sorted(counts.items())

    @property
    def meta(self) -> list[dict]:
        return self.manifest.meta or [{} for _ in range(len(self))]

    def available_filters(self) -> list[str]:
        return self.index.available_filters()

    def has_label(self, label: str) -> bool:
        return any(label in ls for ls in self._labels)

    # ------------------------------------------------------------ queries

    def row_of(self, item_id: str) -> int:
        return self.index.row_of(item_id)  # KeyError for an unknown id

    def vector_of(self, row: int) -> np.ndarray:
        return self.index.vector(row)

    def warm_up(self) -> None:
        """Load the query encoder now, in the background, so the first upload does not wait for it."""

        def load() -> None:
            try:
                self.api.query_space()
            except Exception:  # reported again, clearly, by the first upload that needs it
                logging.getLogger("rsir.app").exception("could not load the query encoder")

        threading.Thread(target=load, name="rsir-encoder-warm-up", daemon=True).start()

    def embed(self, image: np.ndarray) -> np.ndarray:
        """Decoded image (float [C, H, W]) -> query vector [1, D], embedded as the index was."""
        return self.api.embed_image(image)

    def ranked(
        self, query: np.ndarray, filters: Filters, offset: int, k: int, exclude_row: int | None = None
    ) -> tuple[int, list[tuple[int, float]]]:
        """(how many rows pass the filters, [(row, score)] of ranks offset+1 .. offset+k)."""
        page = self.index.page(query, filters, offset, k, exclude_row)
        return page.total, page.hits

    def relative_path(self, row: int) -> str:
        path = Path(self.manifest.paths[row])
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.name
