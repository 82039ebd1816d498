"""Public API, a built index: search it by image, by indexed id, by a vector of its space, or by words (with a
`rsir text train` model); filtered and paged like `rsir search` and the web service, which call it.

    index = rsir.open_index("idx/")
    index.page(item_id="beach/beach00", k=5, labels=("beach",)).hits
"""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from rsir.cbir.indexing import Hit, SearchPage

__all__ = ["Index", "open_index"]


class Index:
    """A loaded index: search by image, by indexed id, or by a vector of the index's space."""

    def __init__(self, folder: str | Path, *, runtime: str = "auto", batched: bool = False, **query_params: Any):
        """``runtime``: how image queries are embedded (``auto`` follows an int8 index); ``batched``: concurrent
        unfiltered searches of one process share a store call (what the web service turns on);
        ``query_params``: ``nprobe``, ``ef_search``, ``rerank`` overrides."""
        from rsir.index.searcher import SearchIndex

        self._index = SearchIndex(Path(folder), **({"batched": True} if batched else {}), **query_params)
        self.manifest = self._index.manifest
        self.runtime = runtime
        self._text: dict[str, Any] = {}
        self._space: Any = None
        self._space_lock = threading.Lock()

    @property
    def searcher(self) -> Any:
        """The low-level :class:`rsir.index.searcher.SearchIndex` (rows, store, filter columns) under this index."""
        return self._index

    def query_space(self) -> Any:
        """The :class:`rsir.Space` image queries are embedded in (the index's encoder and head), loaded once."""
        from rsir.cbir.indexing import query_space

        with self._space_lock:
            if self._space is None:
                self._space = query_space(self.manifest, self.runtime)
        return self._space

    def embed_image(self, image: np.ndarray) -> np.ndarray:
        """A decoded image (float ``[C, H, W]`` in [0, 1]) -> its query vector ``[1, D]``, embedded as the
        index's vectors were."""
        return self.query_space().embed_images([image])

    def __len__(self) -> int:
        return len(self._index)

    @property
    def ids(self) -> list[str]:
        return list(self.manifest.ids)

    def vector(self, item_id: str) -> np.ndarray:
        """The stored vector of an indexed item."""
        return np.asarray(self._index.vector(self._index.row_of(item_id))).reshape(-1)  # any store

    def search_vector(self, vector: np.ndarray, k: int = 10, *, skip_id: str | None = None) -> list[Hit]:
        from rsir.cbir.indexing import search

        query = np.asarray(vector, np.float32).reshape(1, -1)
        if query.shape[1] != self.manifest.dim:
            raise ValueError(f"query has dimension {query.shape[1]}, the index {self.manifest.dim}")
        return search(self._index, query, k, skip_id=skip_id)

    def page(
        self,
        vector: np.ndarray | None = None,
        k: int = 10,
        *,
        image: str | Path | None = None,
        item_id: str | None = None,
        runtime: str | None = None,
        labels: tuple[str, ...] = (),
        date_from: date | str | None = None,
        date_to: date | str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        offset: int = 0,
        skip_id: str | None = None,
    ) -> SearchPage:
        """Ranks offset+1 .. offset+k among the items passing the filters, and how many pass: the page
        `rsir search` and the web service answer from. The query: a ``vector`` of the index's space, an
        ``image`` file (embedded in the index's space, on ``runtime``: default the index's) or an indexed
        ``item_id`` (left out)."""
        from rsir.cbir.indexing import query_vector, search_page

        if sum(q is not None for q in (vector, image, item_id)) != 1:
            raise ValueError("give exactly one query: a vector, an image or an item id")
        if vector is None:
            image = Path(image) if image is not None else None
            vector = query_vector(self._index, image=image, item_id=item_id, runtime=runtime or self.runtime)
            skip_id = skip_id or item_id
        query = np.asarray(vector, np.float32).reshape(1, -1)
        return search_page(self._index, query, k, filters=_filters(labels, date_from, date_to, bbox), offset=offset,
                           skip_id=skip_id)  # fmt: skip

    def path_of(self, item_id: str) -> str:
        """The file an indexed item was embedded from."""
        return self.manifest.paths[self._index.row_of(item_id)]

    def write_grid(
        self, hits: list[Hit], path: str | Path, *, image: str | Path | None = None, item_id: str | None = None,
        text: str | None = None,
    ) -> Path:  # fmt: skip
        """A result grid (.png or .html): the query (an image, an indexed item or a sentence), then the hits."""
        from rsir.viz.grid import Cell, write_grid

        if text is not None:  # a blank tile carries the sentence
            query = Cell([np.full((8, 8, 3), 255, np.uint8)], f"query:\n{text}")
        else:
            query = Cell([Path(image) if image is not None else Path(self.path_of(str(item_id)))], "query")
        cells = [Cell([Path(h.path)], f"{h.rank}. {h.id}\n{h.score:.3f}") for h in hits]
        write_grid(query, cells, Path(path))
        return Path(path)

    def search_text(self, text: str, model: str | Path, k: int = 10, *, offset: int = 0) -> list[Hit]:
        """Scenes for a sentence, with a `rsir text train` checkpoint (loaded once per model)."""
        return self.text_page(text, model, k, offset=offset).hits

    def text_page(
        self,
        text: str,
        model: str | Path,
        k: int = 10,
        *,
        labels: tuple[str, ...] = (),
        date_from: date | str | None = None,
        date_to: date | str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        offset: int = 0,
    ) -> SearchPage:
        """:meth:`page` for a sentence (`rsir search --text --text-model`): filtered, paged, with the total."""
        filters = _filters(labels, date_from, date_to, bbox)
        total, hits = self.text_model(model).search(text, k, filters=filters, offset=offset)
        return SearchPage(total=total, offset=offset, hits=hits)

    def text_model(self, model: str | Path) -> Any:
        """The loaded text <-> scene model over this index (:class:`rsir.text.search.SceneTextSearch`, loaded
        once per checkpoint): the web service pages rows with it."""
        from rsir.text.search import SceneTextSearch

        if str(model) not in self._text:
            self._text[str(model)] = SceneTextSearch(self._index, model)
        return self._text[str(model)]

    def search_id(self, item_id: str, k: int = 10) -> list[Hit]:
        """Nearest items to an indexed item (itself left out)."""
        return self.search_vector(self.vector(item_id), k, skip_id=item_id)

    def search_image(self, image: str | Path, k: int = 10) -> list[Hit]:
        """Nearest items to an image file, embedded in the index's own space (encoder and head)."""
        from rsir.cbir.indexing import query_vector

        return self.search_vector(query_vector(self._index, image=Path(image)), k)


def _filters(labels, date_from, date_to, bbox):
    from rsir.index.filters import Filters, check_bbox

    day = lambda d: date.fromisoformat(d) if isinstance(d, str) else d  # noqa: E731
    return Filters(tuple(labels), day(date_from), day(date_to), check_bbox(tuple(bbox)) if bbox else None)


def open_index(folder: str | Path, **query_params: Any) -> Index:
    """Load an index folder; ``query_params``: ``nprobe``, ``ef_search``, ``rerank`` overrides."""
    return Index(folder, **query_params)
