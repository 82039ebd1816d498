import numpy as np

from rsir.active.diversity import cluster_picks, rank, top_k


def test_top_k_matches_naive_sort_without_ties():
    rng = np.random.default_rng(0)
    scores = rng.permutation(50).astype(float)
    assert top_k(scores, 7, rng).tolist() == np.argsort(-scores)[:7].tolist()
    assert top_k(scores, 100, rng).tolist() == np.argsort(-scores).tolist()
    assert len(top_k(scores, 0, rng)) == 0 and len(top_k(np.empty(0), 3, rng)) == 0


def test_ties_are_broken_uniformly_at_random():
    rng = np.random.default_rng(1)
    scores = np.r_[5.0, np.zeros(9)]  # 0 always first, then one of 9 tied
    seconds = [top_k(scores, 2, rng)[1] for _ in range(900)]
    assert top_k(scores, 2, rng)[0] == 0
    counts = np.bincount(seconds, minlength=10)[1:]
    assert counts.min() > 60 and counts.max() < 140  # 100 expected each
    assert sorted(rank(scores, rng).tolist()) == list(range(10))


def blobs(n_per: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 20]], float)
    x = np.concatenate([c + rng.normal(0, 0.3, (n_per, 2)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(len(centres)), n_per)


def test_cluster_picks_take_the_best_member_of_each_distinct_cluster():
    x, blob = blobs()
    rng = np.random.default_rng(0)
    scores = rng.random(len(x))
    picks = cluster_picks(x, scores, 5, rng, preselect_factor=10)
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3, 4]
    best_per_blob = {b: np.flatnonzero(blob == b)[scores[blob == b].argmax()] for b in range(5)}
    assert sorted(picks.tolist()) == sorted(best_per_blob.values())
    assert np.all(np.diff(scores[picks]) <= 0)  # most uncertain first


def test_top_k_alone_would_not_be_diverse():
    # Blob 0 holds all the high scores: top-k stays there, cluster picks spread out.
    x, blob = blobs()
    scores = np.where(blob == 0, 10.0, 0.0) + np.random.default_rng(2).random(len(x))
    rng = np.random.default_rng(0)
    assert set(blob[top_k(scores, 5, rng)].tolist()) == {0}
    assert len(set(blob[cluster_picks(x, scores, 5, rng)].tolist())) == 5


def test_constant_scores_pick_a_random_member_per_cluster():
    x, blob = blobs()
    results = set()
    for seed in range(5):
        picks = cluster_picks(x, np.zeros(len(x)), 5, np.random.default_rng(seed))
        assert sorted(blob[picks].tolist()) == [0, 1, 2, 3, 4]
        results.add(tuple(sorted(picks.tolist())))
    assert len(results) > 1


def test_features_function_sees_only_preselected_rows():
    x, _ = blobs(n_per=40)  # 200 candidates
    seen = []

    def features(rows):
        seen.append(rows)
        return x[rows]

    rng = np.random.default_rng(0)
    scores = rng.random(len(x))
    picks = cluster_picks(features, scores, 3, rng, preselect_factor=4)
    assert len(seen) == 1 and len(seen[0]) == 12
    assert set(seen[0].tolist()) == set(np.argsort(-scores)[:12].tolist())
    assert len(picks) == 3 and set(picks.tolist()) <= set(seen[0].tolist())


def test_fewer_candidates_than_picks_returns_all():
    x, _ = blobs(n_per=1)
    rng = np.random.default_rng(0)
    scores = np.array([0.1, 0.5, 0.3, 0.9, 0.2])
    assert cluster_picks(x, scores, 8, rng).tolist() == [3, 1, 2, 4, 0]
    assert len(cluster_picks(x, scores, 0, rng)) == 0


def test_duplicate_features_still_give_n_picks():
    # Identical points leave k-means clusters empty; the shortfall is filled by the next best.
    x = np.zeros((30, 4), np.float32)
    rng = np.random.default_rng(0)
    picks = cluster_picks(x, np.arange(30.0), 6, rng)
    assert len(picks) == 6 and len(set(picks.tolist())) == 6


def test_pca_reduce_keeps_the_dominant_directions():
    from rsir.active.diversity import pca_reduce

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((500, 3)) * [10.0, 5.0, 0.01]) @ np.linalg.qr(rng.standard_normal((3, 3)))[0]
    y = pca_reduce(x.astype(np.float32), 2)
    assert y.shape == (500, 2)
    d_x = np.linalg.norm(x[:, None] - x[None], axis=-1)
    d_y = np.linalg.norm(y[:, None] - y[None], axis=-1)
    np.testing.assert_allclose(d_y, d_x, atol=0.05)
    assert pca_reduce(x, 5) is x
