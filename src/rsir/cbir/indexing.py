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
from rsir.index.faiss_index import IndexParams, check_params, describe
from rsir.index.filters import NO_FILTERS, Filters
from rsir.index.manifest import IndexManifest
from rsir.index.searcher import SearchIndex
from rsir.index.store import backend_of, backend_of_record, parse_store


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
    runtime: str = ""
    built: str = ""  # what was built, e.g. "ivfpq (nlist 4, pq_m 64 x 5 bits, nprobe 4)"
    note: str = ""  # how the request was adapted to the data (IVF-PQ on few vectors)
    store: str = "faiss"
    n_added: int = 0


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
    return Embeddings(feats.ids, apply_head(feats.vectors, space.head), feats.failed, feats.runtime)


def index_archive(
    archive: Archive,
    out: Path,
    space: Space,
    params: IndexParams = IndexParams(),
    *,
    store: str = "faiss",
    engine: str = "local",
    ray_options=None,
    **embed_kwargs,
) -> IndexReport:
    """Embed ``archive`` and write an index at ``out`` into ``store`` (``faiss``, ``milvus:FILE.db`` or
    ``milvus:http://HOST:19530``); the store and index type are checked before anything is embedded."""
    backend, location = parse_store(store)
    backend.resolve_kind(params.index_type, 1)
    record = backend.record(location, out)
    start = time.perf_counter()
    check_params(params, space.encoder.config.dim)  # a bad --pq-m fails before the archive is embedded
    emb = embed_with(engine, space, archive, ray_options, **embed_kwargs)
    embed_seconds = time.perf_counter() - start
    if not emb.ids:
        raise ValueError(f"no readable images in {archive.root}")
    by_id = {it.id: it for it in archive.items}
    items = [by_id[i] for i in emb.ids]
    params, note = backend.fit(params, len(items), int(emb.vectors.shape[1]))
    kind = params.index_type
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
        runtime=emb.runtime,
        store=record,
    )
    previous = _previous_store(out)
    facts = backend.build(out, emb.vectors, manifest, IndexParams(**{**params.__dict__, "index_type": kind}))
    if previous and previous != record:  # a rebuilt index frees what the old one held (its Milvus collection)
        backend_of_record(previous).discard(previous)
    return IndexReport(
        n_items=len(items),
        n_failed=len(emb.failed),
        n_skipped=len(archive.skipped),
        dim=manifest.dim,
        index_type=kind,
        seconds=round(time.perf_counter() - start, 3),
        images_per_second=round(len(archive) / max(embed_seconds, 1e-9), 2),
        bytes_per_item=round(facts["index_bytes"] / len(items), 1),
        out=str(out),
        build_seconds=round(facts["build_seconds"], 3),
        engine=engine,
        runtime=emb.runtime,
        built=describe(params),
        note=note,
        store=record["kind"],
        n_added=len(items),
    )


def _previous_store(out: Path) -> dict | None:
    try:
        return IndexManifest.read(out).store
    except (FileNotFoundError, TypeError, ValueError):
        return None


def append_archive(
    archive: Archive, out: Path, *, engine: str = "local", ray_options=None, **embed_kwargs
) -> IndexReport:
    """Add the archive's items that ``out`` does not hold yet: only they are embedded, existing rows stay as
    they are (no rebuild). A killed append leaves the previous index intact; rerunning it resumes (finished
    embedding shards are reused, a Milvus store's partial upsert is rewritten)."""
    from dataclasses import replace

    from rsir.index.faiss_index import recover_folder

    start = time.perf_counter()
    recover_folder(out)
    old = IndexManifest.read(out)
    if Path(archive.root).resolve() != Path(old.archive_root):
        raise ValueError(f"--append: {out} indexes {old.archive_root}, not {Path(archive.root).resolve()}")
    runtime = "onnx-int8" if old.runtime == "onnx-int8" else "auto"  # new rows embedded as the old ones were
    space = Space.load(old.encoder, Path(old.head) if old.head else None, runtime)
    old.check_compatible(space.encoder.config.name, space.encoder.weights_hash, space.head_hash)
    known = set(old.ids)
    fresh = [i for i, it in enumerate(archive.items) if it.id not in known]
    emb = embed_with(engine, space, archive.subset(fresh), ray_options, **embed_kwargs) if fresh else None
    embed_seconds = time.perf_counter() - start
    added = emb.ids if emb else []
    build_seconds = 0.0
    if added:
        by_id = {it.id: it for it in archive.items}
        items = [by_id[i] for i in added]
        new = replace(
            old,
            ids=old.ids + added,
            paths=old.paths + [str(it.path.resolve()) for it in items],
            labels=old.labels + [list(it.labels) for it in items],
            meta=(old.meta or [{} for _ in old.ids]) + [it.meta for it in items],
            store=dict(old.store),
            rsir_version=__version__,
        )
        build_start = time.perf_counter()
        backend_of(old).append(out, old, emb.vectors, new)
        build_seconds = time.perf_counter() - build_start
    return IndexReport(
        n_items=len(old.ids) + len(added),
        n_failed=len(emb.failed) if emb else 0,
        n_skipped=len(archive.skipped),
        dim=old.dim,
        index_type=old.index_type,
        seconds=round(time.perf_counter() - start, 3),
        images_per_second=round(len(fresh) / max(embed_seconds, 1e-9), 2),
        bytes_per_item=0.0,
        out=str(out),
        build_seconds=round(build_seconds, 3),
        engine=engine,
        runtime=emb.runtime if emb else "",
        store=old.store.get("kind", "faiss"),
        n_added=len(added),
    )


def remove_items(out: Path, ids: list[str]) -> dict:
    """Drop items by id from an index (FAISS: the kept vectors are re-added, nothing re-embedded or retrained;
    Milvus: deleted in the collection). Unknown ids are an error and nothing is removed."""
    from dataclasses import replace

    from rsir.index.faiss_index import recover_folder

    recover_folder(out)
    old = IndexManifest.read(out)
    row = {id_: i for i, id_ in enumerate(old.ids)}
    unknown = [i for i in ids if i not in row]
    if unknown:
        raise KeyError(f"unknown id(s) {unknown[:5]} (index holds {len(old.ids)} items); nothing removed")
    drop = {row[i] for i in ids}
    keep = np.array([i for i in range(len(old.ids)) if i not in drop], dtype=np.int64)
    if not len(keep):
        raise ValueError("removing every item would leave an empty index; delete the folder instead")
    meta = old.meta or [{} for _ in old.ids]
    new = replace(
        old,
        ids=[old.ids[i] for i in keep],
        paths=[old.paths[i] for i in keep],
        labels=[old.labels[i] for i in keep],
        meta=[meta[i] for i in keep],
        store=dict(old.store),
    )
    backend_of(old).remove(out, old, keep, new)
    return {"removed": len(drop), "n_items": len(keep), "out": str(out), "store": old.store.get("kind", "faiss")}


@dataclass
class Hit:
    rank: int
    id: str
    path: str
    score: float
    labels: list[str]


def query_vector(
    index: SearchIndex, *, image: Path | None = None, item_id: str | None = None, runtime: str = "auto"
) -> np.ndarray:
    """The query's vector in the index's own space (checked against the index manifest)."""
    if (image is None) == (item_id is None):
        raise ValueError("give exactly one of an image path or an item id")
    if item_id is not None:
        return index.vector(index.row_of(item_id))
    from rsir.data.images import load_image

    return query_space(index.manifest, runtime).embed_images([load_image(image)])


def query_space(manifest: IndexManifest, runtime: str = "auto") -> Space:
    """The space an index's queries are embedded in: its encoder and head, checked against the manifest;
    ``auto`` on an int8 index embeds queries on int8 too, as the index's vectors were."""
    head = Path(manifest.head) if manifest.head else None
    if runtime == "auto" and manifest.runtime == "onnx-int8":
        runtime = "onnx-int8"
    space = Space.load(manifest.encoder, head, runtime)
    manifest.check_compatible(space.encoder.config.name, space.encoder.weights_hash, space.head_hash)
    return space


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
