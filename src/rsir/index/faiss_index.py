"""FAISS indexes over normalised embeddings: exact by default, IVF-PQ or HNSW by option; atomic save/load."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rsir.index.manifest import MANIFEST, IndexManifest

INDEX_FILE = "index.faiss"
VECTORS_FILE = "vectors.npy"
INDEX_TYPES = ("flat", "ivfpq", "hnsw", "auto")


@dataclass(frozen=True)
class IndexParams:
    """Recall/speed knobs.

    Build time: ``nlist`` (IVF lists, default ~sqrt(N)), ``pq_m`` (PQ bytes per vector, default by dim),
    ``nbits``, ``hnsw_m`` (graph degree), ``ef_construction``, ``train_sample`` (IVF-PQ trains on at most
    this many vectors). Query time: ``nprobe`` (IVF lists visited), ``ef_search`` (HNSW beam) and
    ``rerank``: IVF-PQ fetches ``rerank * k`` candidates by their compressed codes, then orders them by
    exact inner products with the stored vectors (0 or 1 = codes only). PQ codes alone rank near
    neighbours coarsely: at 10^6 x 1280-d the true top 10 sit in the codes' top 40 at ~0.90, their top 100
    at ~0.97, so re-ranking 100 candidates buys the recall back for 100 dot products per query.
    """

    index_type: str = "flat"
    nlist: int | None = None
    pq_m: int | None = None
    nbits: int = 8
    nprobe: int = 32
    hnsw_m: int = 32
    ef_construction: int = 40
    ef_search: int = 128
    rerank: int = 10
    train_sample: int = 100_000


AUTO_APPROX_FROM = 100_000


def choose_index_type(n: int) -> str:
    """Exact search up to ~100k vectors (tens of ms per query on 2 cores at 1280-d); IVF-PQ past that,
    which keeps memory per item to its PQ code (HNSW holds full vectors plus a graph and builds slowly)."""
    return "flat" if n < AUTO_APPROX_FROM else "ivfpq"


def _pq_m(dim: int) -> int:
    for m in (64, 48, 32, 16, 8, 4, 2, 1):
        if dim % m == 0 and dim // m >= 4:
            return m
    return 1


def default_nlist(n: int) -> int:
    """~sqrt(N) lists: k-means training stays affordable on a laptop, and nprobe=32 visits ~3% at 1M."""
    return max(1, min(int(math.sqrt(n)), n // 39))


# Fewer training points than this per k-means centroid (IVF lists, PQ codewords) is refused by FAISS at 1
# and useless well before; small collections get fewer lists / codewords, or an exact index.
MIN_POINTS_PER_CENTROID = 4
MIN_PQ_BITS = 4  # 16 codewords per sub-vector; below that an exact index is both smaller to reason about and exact


def check_params(params: IndexParams, dim: int) -> None:
    """Errors knowable before any vector exists (run before embedding an archive)."""
    if params.index_type not in INDEX_TYPES:
        raise ValueError(f"unknown index type {params.index_type!r}; choose from {', '.join(INDEX_TYPES)}")
    if params.index_type in ("ivfpq", "auto") and params.pq_m is not None and (params.pq_m < 1 or dim % params.pq_m):
        divisors = [m for m in (1, 2, 4, 8, 16, 32, 48, 64, 96, 128) if dim % m == 0]
        raise ValueError(f"--pq-m {params.pq_m} must divide the dimension {dim}, e.g. one of {divisors}")


def fit_params(n: int, dim: int, params: IndexParams) -> tuple[IndexParams, str]:
    """The parameters actually built for ``n`` vectors, and a note when they differ from the request.

    ``auto`` becomes a concrete type; IVF-PQ gets at most ``n / MIN_POINTS_PER_CENTROID`` lists and
    codebooks of at most that many codewords (``nbits``), or falls back to an exact flat index when
    ``n`` cannot train 2**MIN_PQ_BITS codewords.
    """
    check_params(params, dim)
    kind = choose_index_type(n) if params.index_type == "auto" else params.index_type
    if kind != "ivfpq":
        return replace(params, index_type=kind), ""
    fits = max(n // MIN_POINTS_PER_CENTROID, 1)
    nbits = min(params.nbits, int(math.log2(fits)))
    if nbits < MIN_PQ_BITS:
        need = MIN_POINTS_PER_CENTROID * 2**MIN_PQ_BITS
        note = f"{n} vectors are too few to train IVF-PQ (needs {need}); built an exact flat index instead"
        return replace(params, index_type="flat"), note
    nlist = min(params.nlist or default_nlist(n), fits)
    fitted = replace(params, index_type=kind, nlist=nlist, pq_m=params.pq_m or _pq_m(dim), nbits=nbits)
    changed = [
        f"{name} {getattr(params, name)} -> {getattr(fitted, name)}"
        for name in ("nlist", "nbits")
        if getattr(params, name) is not None and getattr(params, name) != getattr(fitted, name)
    ]
    note = f"IVF-PQ sized to {n} vectors: {', '.join(changed)}" if changed else ""
    return fitted, note


def describe(params: IndexParams) -> str:
    """One line saying what was built, e.g. ``ivfpq (nlist 4, pq_m 64 x 5 bits, nprobe 4)``."""
    if params.index_type == "ivfpq":
        nprobe = min(params.nprobe, params.nlist or params.nprobe)
        return f"ivfpq (nlist {params.nlist}, pq_m {params.pq_m} x {params.nbits} bits, nprobe {nprobe})"
    if params.index_type == "hnsw":
        return f"hnsw (M {params.hnsw_m}, efSearch {params.ef_search})"
    return params.index_type + (" (exact)" if params.index_type == "flat" else "")


def _train_ivfpq(vectors: np.ndarray, params: IndexParams, seed: int):
    import faiss

    n, dim = vectors.shape
    params, _ = fit_params(n, dim, params)
    nlist, m = params.nlist, params.pq_m
    assert nlist is not None and m is not None  # fit_params sizes both
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, params.nbits, faiss.METRIC_INNER_PRODUCT)
    # Sized on purpose (fit_params): FAISS's "please provide at least 39 points per centroid" warning is noise.
    index.cp.min_points_per_centroid = index.pq.cp.min_points_per_centroid = 1
    # k-means needs ~39 points per centroid (coarse lists and PQ codebooks alike); more than ~64 per list
    # rarely improves the lists but costs training time.
    size = min(n, max(39 * nlist, 39 * 2**params.nbits, min(params.train_sample, 64 * nlist)))
    sample = vectors[np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.nprobe = min(params.nprobe, nlist)
    return index


def build_index(vectors: np.ndarray, params: IndexParams = IndexParams(), seed: int = 0, shard: int = 65_536):
    """Inner-product index (cosine on normalised vectors), trained on a sample, then filled ``shard`` rows at a
    time (``vectors`` may be a memory map: only one shard is copied into RAM at once)."""
    import faiss

    n, dim = vectors.shape
    params, _ = fit_params(n, dim, params)
    kind = params.index_type
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        index.hnsw.efSearch = params.ef_search
    elif kind == "ivfpq":
        index = _train_ivfpq(vectors, params, seed)
    else:
        raise ValueError(f"unknown index type {params.index_type!r}; choose from {INDEX_TYPES}")
    for start in range(0, n, shard):
        index.add(np.ascontiguousarray(vectors[start : start + shard], dtype=np.float32))
    return index


def set_search_params(index, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
    """Query-time knobs on a built or loaded index (ignored where they do not apply)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and nprobe:
        ivf.nprobe = min(nprobe, ivf.nlist)
    if hasattr(index, "hnsw") and ef_search:
        index.hnsw.efSearch = ef_search


def search_params(index, selector):
    """FAISS search parameters carrying an id selector, of the type this index kind requires (keeping the
    index's own nprobe / efSearch, which explicit parameters would otherwise reset)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)
    return faiss.SearchParameters(sel=selector)


def search_index(
    index,
    queries: np.ndarray,
    k: int,
    vectors: np.ndarray | None = None,
    rerank: int = 0,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, rows); with ``vectors`` and ``rerank > 1``, ``rerank * k`` candidates from the index
    are re-scored exactly (the stored vectors are only gathered for those candidates). ``mask`` (bool [N])
    restricts the search to those rows inside FAISS, before candidates are drawn and re-ranked."""
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, index.ntotal)
    kwargs = {}
    if mask is not None:
        bitmap = np.packbits(mask, bitorder="little")  # must outlive the search call
        kwargs["params"] = search_params(index, faiss.IDSelectorBitmap(bitmap))
    if vectors is None or rerank <= 1 or k <= 0:
        return index.search(q, k, **kwargs)
    _, cand = index.search(q, min(rerank * k, index.ntotal), **kwargs)
    gathered = np.asarray(vectors[np.maximum(cand, 0).reshape(-1)], dtype=np.float32).reshape(*cand.shape, -1)
    exact = np.where(cand >= 0, np.matmul(gathered, q[:, :, None])[..., 0], -np.inf).astype(np.float32)
    order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(exact, order, 1)
    return scores, np.where(np.isfinite(scores), np.take_along_axis(cand, order, 1), -1)


def save_index(folder: Path, index, vectors: np.ndarray, manifest: IndexManifest) -> None:
    """Write index, vectors and manifest to a temp folder, then swap it in: readers never see half an index."""
    import faiss

    def write(tmp: Path) -> None:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        np.save(tmp / VECTORS_FILE, vectors)

    save_folder(folder, write, manifest)


def save_folder(folder: Path, write: Callable[[Path], None] | None, manifest: IndexManifest) -> None:
    """Fill a temp folder (``write``, then the manifest), then swap it in for ``folder``. A kill between the
    two renames leaves the previous folder under ``.NAME.old*``; ``recover_folder`` puts it back."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    if write is not None:
        write(tmp)
    (tmp / MANIFEST).write_text(manifest.to_json())
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old{os.getpid()}")
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_folder(folder: Path) -> None:
    """Undo a swap interrupted between its renames (the index folder missing, its previous self parked)."""
    folder = Path(folder)
    if folder.exists():
        return
    parked = sorted(folder.parent.glob(f".{folder.name}.old*"), key=lambda p: p.stat().st_mtime)
    parked = [p for p in parked if (p / MANIFEST).is_file()]
    if parked:
        os.replace(parked[-1], folder)


def __getattr__(name: str):
    # SearchIndex moved to rsir.index.searcher (it now fronts any store); the old import path keeps working.
    if name == "SearchIndex":
        from rsir.index.searcher import SearchIndex

        return SearchIndex
    raise AttributeError(name)
