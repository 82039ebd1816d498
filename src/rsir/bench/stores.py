"""Index stores side by side on the same generated vectors (see ``rsir.bench.ann``): FAISS IVF-PQ (re-ranked)
and Milvus Lite with its ANN index. Build seconds, queries/s with 1 and 16 concurrent clients, recall@10
against exact search, all through ``SearchIndex.page`` (the path `rsir serve` answers from); and growing an
index: appending 10% to it against rebuilding it whole, from the same vectors (embedding excluded)."""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rsir.index.faiss_index import IndexParams
from rsir.index.filters import NO_FILTERS
from rsir.index.manifest import IndexManifest

# (label, store spec with {tmp} for the scratch folder, rsir index type, params)
FAISS_IVFPQ = ("faiss", "faiss", "ivfpq", IndexParams(index_type="ivfpq"))


def milvus_case(index_type: str = "hnsw") -> tuple:
    return ("milvus-lite", "milvus:{tmp}/store.db", index_type, IndexParams(index_type=index_type))


@dataclass
class StoreRow:
    store: str
    index: str
    n: int
    dim: int
    build_s: float
    qps_1: float
    qps_16: float
    recall10: float

    def to_dict(self) -> dict:
        return asdict(self)


def synthetic_manifest(n: int, dim: int, index_type: str, store: dict) -> IndexManifest:
    return IndexManifest(
        encoder="bench",
        weights_hash="-",
        dim=dim,
        metric="cosine",
        index_type=index_type,
        ids=[f"g/{i:08d}" for i in range(n)],
        paths=[f"/bench/{i:08d}.tif" for i in range(n)],
        labels=[[f"c{i % 21}"] for i in range(n)],
        archive_root="/bench",
        store=store,
    )


def _build(case: tuple, folder: Path, vectors: np.ndarray, tmp: Path) -> float:
    from rsir.index.store import parse_store

    _, spec, kind, params = case
    backend, location = parse_store(spec.format(tmp=tmp))
    manifest = synthetic_manifest(len(vectors), vectors.shape[1], kind, backend.record(location, folder))
    start = time.perf_counter()
    backend.build(folder, vectors, manifest, params)
    return time.perf_counter() - start


def _qps(index, queries: np.ndarray, clients: int) -> float:
    def one(i: int) -> None:
        index.page(queries[i : i + 1], NO_FILTERS, 0, 10)

    one(0)  # warm: first-call setup is not throughput
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(len(queries))))
    return len(queries) / (time.perf_counter() - start)


def measure_store(case: tuple, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, tmp: Path) -> StoreRow:
    from rsir.bench.ann import recall
    from rsir.index.searcher import SearchIndex

    folder = tmp / f"index-{case[0]}"
    build_s = _build(case, folder, base, tmp)
    index = SearchIndex(folder)
    got = np.array([[r for r, _ in index.page(q[None], NO_FILTERS, 0, 10).hits] for q in queries])
    return StoreRow(
        case[0],
        case[2],
        len(base),
        base.shape[1],
        round(build_s, 2),
        round(_qps(index, queries, 1), 1),
        round(_qps(index, queries, 16), 1),
        round(recall(got, truth), 4),
    )


def append_vs_rebuild(case: tuple, vectors: np.ndarray, added: float, tmp: Path) -> dict:
    """Seconds to rebuild an index of all ``vectors`` vs to append the last ``added`` fraction of them to an
    index of the rest (the store's own append: FAISS keeps its trained lists and codebooks, Milvus upserts)."""
    from dataclasses import replace

    from rsir.index.store import parse_store

    n = len(vectors)
    n_old = int(round(n / (1 + added)))
    rebuild_s = _build(case, tmp / "full", vectors, tmp)
    _build(case, tmp / "grown", vectors[:n_old], tmp)
    old = IndexManifest.read(tmp / "grown")
    whole = synthetic_manifest(n, vectors.shape[1], case[2], dict(old.store))
    new = replace(old, ids=whole.ids, paths=whole.paths, labels=whole.labels, store=dict(old.store))
    backend, _ = parse_store(case[1].format(tmp=tmp))
    start = time.perf_counter()
    backend.append(tmp / "grown", old, vectors[n_old:], new)
    append_s = time.perf_counter() - start
    return {
        "store": case[0],
        "index": case[2],
        "n": n_old,
        "added": n - n_old,
        # significant figures, not decimals: a 5 ms append rounded to 3 decimals is off by up to 10%, so the
        # printed seconds would not give the printed ratio
        "rebuild_s": float(f"{rebuild_s:.4g}"),
        "append_s": float(f"{append_s:.4g}"),
        "append_over_rebuild": round(append_s / rebuild_s, 4),
    }


def store_benchmark(
    seeds: np.ndarray,
    *,
    n: int,
    dim: int = 256,
    n_queries: int = 300,
    milvus_index: str = "hnsw",
    append_n: int = 100_000,
    seed: int = 0,
    log=None,
) -> dict:
    """The store comparison at ``n`` x ``dim`` and the append benchmark at ``append_n`` (+10%)."""
    from rsir.bench.ann import exact_search, generate, project

    rng = np.random.default_rng(seed)
    dim_seeds = project(seeds, dim, rng)
    base, queries = generate(dim_seeds, n, rng), generate(dim_seeds, n_queries, rng)
    truth = exact_search(base, queries, 10)
    cases = [FAISS_IVFPQ, milvus_case(milvus_index)]
    out: dict = {"stores": [], "append": []}
    for case in cases:
        with _scratch() as tmp:
            row = measure_store(case, base, queries, truth, tmp)
        out["stores"].append(row.to_dict())
        if log:
            qps = f"{row.qps_1}/{row.qps_16} qps"
            log(f"store {row.store} {row.index} n={n}: build {row.build_s} s, {qps}, recall {row.recall10}")
    del base
    grow = generate(dim_seeds, int(append_n * 1.1), rng)
    for case in cases:
        with _scratch() as tmp:
            res = append_vs_rebuild(case, grow, 0.1, tmp)
        out["append"].append(res)
        if log:
            log(f"append {res['store']} {res['index']}: {res['append_s']} s vs rebuild {res['rebuild_s']} s")
    return out


class _scratch:
    """A temporary folder for one store's index (a Milvus Lite file included), removed afterwards."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="rsir-bench-store-"))
        return self.path

    def __exit__(self, *exc) -> None:
        from rsir.index.milvus_client import release_under

        release_under(str(self.path))
        shutil.rmtree(self.path, ignore_errors=True)
