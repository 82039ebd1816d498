"""Build an index of an archive, and query it by image or by item id."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsir import __version__
from rsir.cbir.space import Space
from rsir.data.items import Archive
from rsir.embed.local import Embeddings
from rsir.index.faiss_index import IndexParams, build_index, choose_index_type, save_index
from rsir.index.filters import NO_FILTERS, Filters
from rsir.index.manifest import IndexManifest
from rsir.index.searcher import SearchIndex


@dataclass
class IndexReport:
    n_items: int
    n_failed: int
    n_skipped: int
    dim: int
    index_type: str
    seconds: float
    images_per_second: float
    bytes_per_item: float
    out: str
    build_seconds: float = 0.0
    engine: str = "local"


ENGINES = ("local", "ray")


def embed_with(engine: str, space: Space, archive: Archive, ray_options=None, **embed_kwargs) -> Embeddings:
    """Embeddings of ``archive`` in ``space`` from the named engine; both share the feature cache."""
    if engine == "local":
        return space.embed(archive, **embed_kwargs)
    if engine != "ray":
        raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
    from rsir.embed.features import apply_head
    from rsir.embed.ray_engine import RayOptions, ray_archive_features

    embed_kwargs.pop("workers", None)  # Ray sizes its own decode tasks and actor pool
    feats = ray_archive_features(archive, space.encoder, options=ray_options or RayOptions(), **embed_kwargs)
    return Embeddings(feats.ids, apply_head(feats.vectors, space.head), feats.failed)


def index_archive(
    archive: Archive,
    out: Path,
    space: Space,
    params: IndexParams = IndexParams(),
    *,
    engine: str = "local",
    ray_options=None,
    **embed_kwargs,
) -> IndexReport:
    start = time.perf_counter()
    emb = embed_with(engine, space, archive, ray_options, **embed_kwargs)
    embed_seconds = time.perf_counter() - start
    if not emb.ids:
        raise ValueError(f"no readable images in {archive.root}")
    by_id = {it.id: it for it in archive.items}
    items = [by_id[i] for i in emb.ids]
    kind = choose_index_type(len(items)) if params.index_type == "auto" else params.index_type
    build_start = time.perf_counter()
    index = build_index(emb.vectors, IndexParams(**{**params.__dict__, "index_type": kind}))
    build_seconds = time.perf_counter() - build_start
    manifest = IndexManifest(
        encoder=space.encoder.config.name,
        weights_hash=space.encoder.weights_hash,
        dim=int(emb.vectors.shape[1]),
        metric="cosine",
        index_type=kind,
        ids=emb.ids,
        paths=[str(it.path.resolve()) for it in items],
        labels=[list(it.labels) for it in items],
        archive_root=str(Path(archive.root).resolve()),
        head=space.head_path,
        head_hash=space.head_hash,
        params={k: v for k, v in params.__dict__.items() if v is not None},
        meta=[it.meta for it in items],
        rsir_version=__version__,
    )
    save_index(out, index, emb.vectors, manifest)
    index_bytes = (Path(out) / "index.faiss").stat().st_size
    return IndexReport(
        n_items=len(items),
        n_failed=len(emb.failed),
        n_skipped=len(archive.skipped),
        dim=manifest.dim,
        index_type=kind,
        seconds=round(time.perf_counter() - start, 3),
        images_per_second=round(len(archive) / max(embed_seconds, 1e-9), 2),
        bytes_per_item=round(index_bytes / len(items), 1),
        out=str(out),
        build_seconds=round(build_seconds, 3),
        engine=engine,
    )


@dataclass
class Hit:
    rank: int
    id: str
    path: str
    score: float
    labels: list[str]


def query_vector(index: SearchIndex, *, image: Path | None = None, item_id: str | None = None) -> np.ndarray:
    """The query's vector in the index's own space (checked against the index manifest)."""
    if (image is None) == (item_id is None):
        raise ValueError("give exactly one of an image path or an item id")
    if item_id is not None:
        return index.vector(index.row_of(item_id))
    from rsir.data.images import load_image

    space = Space.load(index.manifest.encoder, Path(index.manifest.head) if index.manifest.head else None)
    index.manifest.check_compatible(space.encoder.config.name, space.encoder.weights_hash, space.head_hash)
    return space.embed_images([load_image(image)])


@dataclass
class SearchPage:
    total: int
    offset: int
    hits: list[Hit]


def search_page(
    index: SearchIndex,
    query: np.ndarray,
    k: int = 10,
    *,
    filters: Filters = NO_FILTERS,
    offset: int = 0,
    skip_id: str | None = None,
) -> SearchPage:
    """Ranks offset+1 .. offset+k among items passing ``filters`` (``skip_id`` left out) and how many pass:
    the same ``SearchIndex.page`` the web service answers from."""
    index.check_filters(filters)
    page = index.page(query, filters, offset, k, index.row_of(skip_id) if skip_id else None)
    m = index.manifest
    hits = [Hit(offset + i + 1, m.ids[r], m.paths[r], s, list(m.labels[r])) for i, (r, s) in enumerate(page.hits)]
    return SearchPage(page.total, offset, hits)


def search(index: SearchIndex, query: np.ndarray, k: int = 10, skip_id: str | None = None) -> list[Hit]:
    return search_page(index, query, k, skip_id=skip_id).hits
