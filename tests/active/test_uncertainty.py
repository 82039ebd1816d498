import numpy as np
import pytest

from rsir.active.pool import Pairs
from rsir.active.uncertainty import (
    PairClassifier,
    balanced_accuracy_curve,
    bcgue_scores,
    estimate_threshold,
    mgue_scores,
    pair_distance,
    pair_features,
)


def unit(angles_deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(np.asarray(angles_deg, np.float64))
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


def all_pairs(n: int) -> Pairs:
    i, j = np.triu_indices(n, 1)
    return Pairs.from_arrays(i, j)


def test_pair_features_and_distance_match_naive():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((7, 5)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    pairs = all_pairs(7)
    feats = pair_features(emb, pairs)
    swapped = pair_features(emb, Pairs(pairs.j, pairs.i))
    dist = pair_distance(emb, pairs, chunk=4)
    assert feats.shape == (21, 10) and feats.dtype == np.float32 and dist.dtype == np.float32
    np.testing.assert_array_equal(feats, swapped)
    for m, (i, j) in enumerate(zip(pairs.i, pairs.j, strict=True)):
        np.testing.assert_allclose(feats[m], np.r_[np.abs(emb[i] - emb[j]), emb[i] * emb[j]], rtol=1e-6)
        assert dist[m] == pytest.approx(1 - float(emb[i] @ emb[j]), abs=1e-6)


def test_threshold_recovers_a_clean_gap():
    d = np.array([0.05, 0.1, 0.2, 0.6, 0.9, 1.2, 0.15])
    y = np.array([1, 1, 1, 0, 0, 0, -1], np.int8)  # the skipped pair is ignored
    assert estimate_threshold(d, y) == pytest.approx(0.4)


def test_threshold_matches_naive_balanced_accuracy_search():
    rng = np.random.default_rng(3)
    d = np.r_[rng.normal(0.4, 0.15, 40), rng.normal(0.8, 0.15, 25)].round(2)
    y = np.r_[np.ones(40), np.zeros(25)].astype(np.int8)
    values = sorted(set(d.tolist()))
    naive = {}
    for lo, hi in zip(values[:-1], values[1:], strict=True):
        t = (lo + hi) / 2
        tpr = np.mean(d[y == 1] <= t)
        tnr = np.mean(d[y == 0] > t)
        naive[t] = (tpr + tnr) / 2
    cuts, bacc = balanced_accuracy_curve(d, y)
    np.testing.assert_allclose(cuts, list(naive))
    np.testing.assert_allclose(bacc, list(naive.values()))
    best = max(naive.values())
    tied = [t for t, b in naive.items() if b == best]
    assert estimate_threshold(d, y) == pytest.approx(tied[len(tied) // 2])


def test_threshold_fallbacks_when_a_class_is_missing():
    ref = np.linspace(0.0, 2.0, 101)
    assert estimate_threshold(np.empty(0), np.empty(0, np.int8), reference=ref) == pytest.approx(1.0)
    assert estimate_threshold(np.empty(0), np.empty(0, np.int8)) == 1.0
    only_sim = estimate_threshold(np.array([0.1, 1.3]), np.array([1, 1], np.int8), reference=ref)
    assert only_sim == pytest.approx(1.3)  # must lie beyond every labelled similar pair
    only_dis = estimate_threshold(np.array([0.7, 1.5]), np.array([0, 0], np.int8), reference=ref)
    assert only_dis == pytest.approx(0.7)
    q = estimate_threshold(np.array([0.1]), np.array([1], np.int8), reference=ref, fallback_quantile=0.25)
    assert q == pytest.approx(0.5)


def test_mgue_ranks_pairs_near_the_threshold_first():
    d = np.array([0.0, 0.45, 1.9, 0.52, 0.3, 1.0])
    order = np.argsort(-mgue_scores(d, 0.5), kind="stable")
    assert order.tolist() == [3, 1, 4, 0, 5, 2]


def test_bcgue_scores():
    np.testing.assert_allclose(bcgue_scores(np.array([0.0, 0.25, 0.5, 0.9, 1.0])), [0, 0.5, 1, 0.2, 0], atol=1e-6)


def angle_pair_problem():
    """Points on the circle; a pair is similar iff the angle between them is under 45 degrees."""
    angles = np.arange(0, 360, 5)
    emb = unit(angles)
    pairs = all_pairs(len(angles))
    diff = np.abs(angles[pairs.i] - angles[pairs.j]) % 360
    diff = np.minimum(diff, 360 - diff)
    return emb, pairs, diff


def test_classifier_learns_a_separable_problem_and_is_unsure_at_the_boundary():
    emb, pairs, diff = angle_pair_problem()
    train = (diff < 30) | (diff > 60)
    y = (diff < 45).astype(np.int8)
    clf = PairClassifier(C=10.0).fit(emb, pairs.take(train), y[train])
    assert clf.fitted
    p = clf.predict_proba(emb, pairs, chunk=97)
    assert np.mean((p > 0.5) == (diff < 45)) > 0.95
    u = bcgue_scores(p)
    near, far = np.abs(diff - 45) <= 5, np.abs(diff - 45) >= 30
    assert u[near].mean() > 0.3 and u[far].max() < 0.05
    assert u[near].mean() > 20 * u[far].mean()


def test_chunked_proba_equals_sklearn_pipeline():
    emb, pairs, diff = angle_pair_problem()
    y = (diff < 45).astype(np.int8)
    clf = PairClassifier().fit(emb, pairs, y)
    sub = pairs.take(np.arange(0, len(pairs), 7))
    expected = clf.model.predict_proba(pair_features(emb, sub))[:, 1]
    np.testing.assert_allclose(clf.predict_proba(emb, sub, chunk=50), expected, atol=1e-5)


def test_classifier_needs_both_classes():
    emb, pairs, _ = angle_pair_problem()
    clf = PairClassifier().fit(emb, pairs.take(np.arange(5)), np.array([1, 1, 1, -1, 1], np.int8))
    assert not clf.fitted
    with pytest.raises(RuntimeError):
        clf.predict_proba(emb, pairs)
