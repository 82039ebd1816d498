import numpy as np
import pytest

from rsir.active.pool import (
    Pairs,
    candidate_pool,
    knn,
    n_all_pairs,
    neighbour_pairs,
    pair_from_linear,
    random_pairs,
)


def circle_clusters(n_per: int = 10, n_clusters: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angles = np.concatenate([c * 2 * np.pi / n_clusters + rng.normal(0, 0.05, n_per) for c in range(n_clusters)])
    return np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)


def assert_canonical(p: Pairs, n_items: int) -> None:
    assert p.i.dtype == np.int64 and p.j.dtype == np.int64
    assert (p.i < p.j).all() and (p.i >= 0).all() and (p.j < n_items).all()
    assert len(np.unique(p.keys())) == len(p)


def test_from_arrays_canonicalises_and_keeps_first_order():
    p = Pairs.from_arrays([3, 1, 2, 5, 1, 4], [1, 3, 2, 0, 3, 7])
    assert p.i.tolist() == [1, 0, 4] and p.j.tolist() == [3, 5, 7]


def test_keys_roundtrip_and_difference():
    p = Pairs.from_arrays([0, 0, 1, 2], [1, 2, 2, 3])
    assert Pairs.from_keys(p.keys()) == p
    q = Pairs.from_arrays([2, 1], [0, 2])  # (0,2), (1,2)
    assert p.difference(q) == Pairs.from_arrays([0, 2], [1, 3])
    assert p.difference(None) == p and p.difference(Pairs.empty()) == p
    assert p.mask_in(q).tolist() == [False, True, True, False]
    assert len(p.concat(q)) == 4


def test_keys_reject_out_of_range():
    with pytest.raises(ValueError):
        Pairs(np.array([-1]), np.array([2])).keys()


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_pair_from_linear_matches_naive_enumeration(n):
    naive = [(i, j) for i in range(n) for j in range(i + 1, n)]
    i, j = pair_from_linear(np.arange(n_all_pairs(n)), n)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == naive


def test_pair_from_linear_large_n_is_exact():
    n = 600_000
    rng = np.random.default_rng(1)
    k = np.unique(np.r_[0, n_all_pairs(n) - 1, rng.integers(0, n_all_pairs(n), 10_000)])
    i, j = pair_from_linear(k, n)
    assert ((i * (2 * n - i - 1)) // 2 + (j - i - 1) == k).all() and (i < j).all() and (j < n).all()


def test_random_pairs_unique_canonical_and_excluded():
    rng = np.random.default_rng(0)
    n = 100
    exclude = random_pairs(n, 1000, rng)
    p = random_pairs(n, 200, rng, exclude=exclude)  # rejection path: 2 * 1200 < 4950
    assert len(p) == 200
    assert_canonical(p, n)
    assert not p.mask_in(exclude).any()


def test_random_pairs_small_universe_returns_what_is_left():
    rng = np.random.default_rng(0)
    n = 6
    everything = Pairs(*pair_from_linear(np.arange(15), n))
    left = everything.take(np.array([2, 7, 11]))
    p = random_pairs(n, 5, rng, exclude=everything.difference(left))
    assert sorted(p.keys().tolist()) == sorted(left.keys().tolist())
    assert len(random_pairs(1, 5, rng)) == 0 and len(random_pairs(10, 0, rng)) == 0


@pytest.mark.parametrize("n,m", [(6, 8), (300, 50)])  # enumeration path and rejection path
def test_random_pairs_uniform(n, m):
    rng = np.random.default_rng(2)
    total = n_all_pairs(n)
    draws = np.concatenate([random_pairs(n, m, rng).keys() for _ in range(600)])
    i, j = Pairs.from_keys(draws).i, Pairs.from_keys(draws).j
    lin = i * (2 * n - i - 1) // 2 + (j - i - 1)
    bins = min(total, 10)
    counts = np.bincount(lin * bins // total, minlength=bins)
    expected = np.diff(np.ceil(np.arange(bins + 1) * total / bins)) / total * len(draws)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 30  # df = 9: p ~ 4e-4; a biased sampler (e.g. rows uniform) gives thousands


def test_knn_matches_brute_force():
    emb = circle_clusters()
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    nn = knn(emb, 3)
    for r in range(len(emb)):
        assert sorted(sims[r, nn[r]].round(5)) == sorted(np.sort(sims[r])[-3:].round(5))
        assert r not in nn[r]


def test_knn_approximate_path_has_high_recall():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((2000, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    exact, approx = knn(emb, 5), knn(emb, 5, exact_limit=100, nprobe=16)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.8


def test_candidate_pool_contains_neighbours_and_random_minus_labelled():
    emb = circle_clusters()
    n = len(emb)
    rng = np.random.default_rng(0)
    labelled = Pairs.from_arrays([0, 5, 12], [1, 6, 30])
    pool = candidate_pool(emb, 3, 100, rng, exclude=labelled)
    assert_canonical(pool, n)
    assert not pool.mask_in(labelled).any()
    near = neighbour_pairs(emb, 3).difference(labelled)
    assert near.mask_in(pool).all()
    assert len(pool) == len(near) + 100
    # Every item's nearest neighbour pair is present unless labelled.
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    top1 = Pairs.from_arrays(np.arange(n), sims.argmax(1)).difference(labelled)
    assert top1.mask_in(pool).all()


def test_knn_of_some_queries_equals_those_rows_of_the_full_search():
    emb = circle_clusters()
    q = np.array([3, 17, 38])
    np.testing.assert_array_equal(knn(emb, 4, queries=q), knn(emb, 4)[q])


def test_max_anchors_takes_neighbours_of_a_random_subset_only():
    emb = circle_clusters()
    got = neighbour_pairs(emb, 3, max_anchors=5, rng=np.random.default_rng(7))
    anchors = np.sort(np.random.default_rng(7).choice(len(emb), 5, replace=False))
    expected = Pairs.from_arrays(np.repeat(anchors, 3), knn(emb, 3, queries=anchors).ravel())
    assert got == expected and len(got) <= 15
    assert len(candidate_pool(emb, 3, 10, np.random.default_rng(0), max_anchors=5)) <= 25
