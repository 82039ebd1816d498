"""Approximate indexes against exact search: recall floors, re-ranking, knobs, size-based defaults."""

import numpy as np
import pytest

from rsir.index.faiss_index import (
    IndexParams,
    SearchIndex,
    build_index,
    choose_index_type,
    default_nlist,
    save_index,
    search_index,
    set_search_params,
)
from rsir.index.manifest import IndexManifest


@pytest.fixture(autouse=True)
def one_faiss_thread():
    # PQ training runs many tiny OpenMP regions; on a shared 2-core machine extra threads only spin.
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def low_rank_clusters(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Normalised points on 40 noisy 8-d patches: neighbours are well defined, as in real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    basis = rng.normal(size=(40, 8, dim)) / np.sqrt(8)
    c = rng.integers(0, 40, n)
    x = centres[c] + 0.7 * np.einsum("nr,nrd->nd", rng.normal(size=(n, 8)), basis[c])
    x += 0.05 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at(rows: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(rows, truth, strict=True)]))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = low_rank_clusters(12_000, 32)
    queries, base = x[:100], x[100:]
    truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :10]
    return queries, base, truth


def test_flat_search_is_the_naive_ranking(data) -> None:
    queries, base, truth = data
    scores, rows = search_index(build_index(base), queries, 10)
    np.testing.assert_array_equal(rows, truth)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ base.T, truth, 1), rtol=1e-5)


def test_rerank_is_exact_ordering_of_the_candidates(data) -> None:
    queries, base, _ = data
    index = build_index(base, IndexParams(index_type="hnsw", hnsw_m=8, ef_search=16))
    _, cand = index.search(queries, 30)
    scores, rows = search_index(index, queries, 10, base, rerank=3)
    sims = np.take_along_axis(queries @ base.T, cand, 1)
    naive = np.take_along_axis(cand, np.argsort(-sims, axis=1, kind="stable")[:, :10], 1)
    np.testing.assert_array_equal(rows, naive)
    np.testing.assert_allclose(scores, np.sort(sims, axis=1)[:, ::-1][:, :10], rtol=1e-5)


IVFPQ = IndexParams(index_type="ivfpq", nprobe=16, rerank=5)


@pytest.fixture(scope="module")
def ivfpq(data):
    import faiss

    faiss.omp_set_num_threads(1)  # module fixtures run before the per-test one
    return build_index(data[1], IVFPQ)


def test_ivfpq_recall_floor_and_rerank_gain(data, ivfpq) -> None:
    queries, base, truth = data
    assert ivfpq.nlist == default_nlist(len(base)) and ivfpq.pq.M == 8
    _, coded = search_index(ivfpq, queries, 10)
    _, reranked = search_index(ivfpq, queries, 10, base, rerank=4)
    assert recall_at(reranked, truth) >= 0.95
    assert recall_at(reranked, truth) > recall_at(coded, truth) + 0.1  # PQ codes alone rank coarsely
    set_search_params(ivfpq, nprobe=1)
    _, narrow = search_index(ivfpq, queries, 10, base, rerank=4)
    set_search_params(ivfpq, nprobe=IVFPQ.nprobe)
    assert recall_at(narrow, truth) < recall_at(reranked, truth)  # the knob reaches the index


def test_hnsw_recall_floor(data) -> None:
    queries, base, truth = data
    index = build_index(base, IndexParams(index_type="hnsw", hnsw_m=16, ef_search=64))
    assert recall_at(search_index(index, queries, 10)[1], truth) >= 0.95


def test_saved_ivfpq_index_reranks_with_its_build_settings(data, ivfpq, tmp_path) -> None:
    queries, base, truth = data
    manifest = IndexManifest(
        encoder="e",
        weights_hash="w",
        dim=32,
        metric="cosine",
        index_type="ivfpq",
        ids=[str(i) for i in range(len(base))],
        paths=[""] * len(base),
        labels=[[]] * len(base),
        archive_root="/",
        params={k: v for k, v in IVFPQ.__dict__.items() if v is not None},
    )
    save_index(tmp_path / "idx", ivfpq, base, manifest)
    loaded = SearchIndex(tmp_path / "idx")
    assert loaded.rerank == 5 and loaded.index.nprobe == 16
    assert recall_at(loaded.search(queries, 10)[1], truth) >= 0.95
    assert SearchIndex(tmp_path / "idx", nprobe=2, rerank=0).index.nprobe == 2


def test_auto_picks_exact_for_small_and_ivfpq_for_large_archives() -> None:
    assert choose_index_type(2_100) == "flat"
    assert choose_index_type(590_326) == "ivfpq"
    assert default_nlist(1_000_000) == 1000 and default_nlist(100) == 2
