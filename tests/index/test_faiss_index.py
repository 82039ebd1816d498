import numpy as np
import pytest

from rsir.embed.local import normalise
from rsir.index.faiss_index import IndexParams, SearchIndex, build_index, save_index
from rsir.index.manifest import IndexManifest, IndexMismatch


def _manifest(n: int, dim: int, **kw) -> IndexManifest:
    base = dict(
        encoder="enc",
        weights_hash="w1",
        dim=dim,
        metric="cosine",
        index_type="flat",
        ids=[f"i{k}" for k in range(n)],
        paths=[f"/p/{k}.jpg" for k in range(n)],
        labels=[["a"]] * n,
        archive_root="/p",
    )
    return IndexManifest(**{**base, **kw})


def test_flat_search_equals_naive_ranking() -> None:
    vecs = normalise(np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32))
    index = build_index(vecs)
    scores, rows = index.search(vecs[:5], 10)
    sims = vecs[:5] @ vecs.T
    naive = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(rows, naive)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, naive, 1), rtol=1e-5)


@pytest.mark.parametrize("kind", ["ivfpq", "hnsw"])
def test_approximate_indexes_find_clustered_neighbours(kind: str) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 32))
    cluster = rng.integers(0, 20, 4000)
    vecs = normalise((centres[cluster] + 0.05 * rng.normal(size=(4000, 32))).astype(np.float32))
    approx = build_index(vecs, IndexParams(index_type=kind, nprobe=16))
    _, got = approx.search(vecs[:50], 10)
    # Inside a tight cluster neighbours are interchangeable: what must hold is that they share the query's cluster.
    same_cluster = cluster[got] == cluster[:50, None]
    assert same_cluster.mean() > 0.95 and (got >= 0).all()


def test_save_load_and_atomic_replace(tmp_path) -> None:
    vecs = normalise(np.random.default_rng(2).normal(size=(30, 8)).astype(np.float32))
    save_index(tmp_path / "idx", build_index(vecs), vecs, _manifest(30, 8))
    save_index(tmp_path / "idx", build_index(vecs[:10]), vecs[:10], _manifest(10, 8))
    loaded = SearchIndex(tmp_path / "idx")
    assert len(loaded) == 10 and loaded.manifest.ids[-1] == "i9"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temp folders left behind
    with pytest.raises(KeyError, match="unknown id"):
        loaded.row_of("nope")


def test_manifest_mismatch_is_a_clear_error(tmp_path) -> None:
    m = _manifest(1, 8)
    m.check_compatible("enc", "w1", None)
    with pytest.raises(IndexMismatch, match="encoder=enc"):
        m.check_compatible("other", "w1", None)
    with pytest.raises(FileNotFoundError, match="not an rsir index"):
        SearchIndex(tmp_path)
