"""Vectorised retrieval metrics against naive pure-Python references and worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsir.metrics import (
    LabelRelevance,
    mean_recall,
    ranking_metrics,
    recall_at_k,
    relevance_matrix,
    topk_metrics,
)

SEEDS = range(8)
LABELS = ["a", "b", "c", "d", "e"]


# --------------------------------------------------------------------------- naive references


def naive_relevance(query_labels, gallery_labels, jaccard_threshold=None):
    out = []
    for q in query_labels:
        row = []
        for g in gallery_labels:
            a, b = set(q), set(g)
            if jaccard_threshold is None:
                row.append(len(a & b) > 0)
            else:
                row.append(bool(a | b) and len(a & b) / len(a | b) >= jaccard_threshold)
        out.append(row)
    return np.array(out, dtype=bool).reshape(len(query_labels), len(gallery_labels))


def naive_ranking(similarity, relevant, k, exclude=None):
    """One query at a time: sort (-sim, index), drop excluded, walk the list."""
    sums = {f"map@{k}": 0.0, f"map@{k}_hits": 0.0, f"p@{k}": 0.0, "r_precision": 0.0, "map": 0.0}
    kept = 0
    for q in range(len(similarity)):
        cands = [g for g in range(len(similarity[q])) if exclude is None or not exclude[q][g]]
        cands.sort(key=lambda g, q=q: (-similarity[q][g], g))
        rels = [bool(relevant[q][g]) for g in cands]
        n_rel = sum(rels)
        if n_rel == 0:
            continue
        kept += 1
        hits, ap_k, ap_full = 0, 0.0, 0.0
        for i, r in enumerate(rels, start=1):
            if r:
                hits += 1
                ap_full += hits / i
                if i <= k:
                    ap_k += hits / i
        hits_k = sum(rels[:k])
        sums[f"map@{k}"] += ap_k / min(k, n_rel)
        sums[f"map@{k}_hits"] += ap_k / hits_k if hits_k else 0.0
        sums[f"p@{k}"] += hits_k / k
        sums["r_precision"] += sum(rels[:n_rel]) / n_rel
        sums["map"] += ap_full / n_rel
    out = {name: (v / kept if kept else math.nan) for name, v in sums.items()}
    out["n_queries"] = kept
    return out


def naive_recall(similarity, positives, ks):
    hits = {k: 0 for k in ks}
    kept = 0
    for q in range(len(similarity)):
        if not any(positives[q]):
            continue
        kept += 1
        order = sorted(range(len(similarity[q])), key=lambda g, q=q: (-similarity[q][g], g))
        for k in ks:
            hits[k] += any(positives[q][g] for g in order[:k])
    return {f"r@{k}": 100.0 * hits[k] / kept for k in ks}


def random_labels(rng, n, max_labels=3):
    return [list(rng.choice(LABELS, size=rng.integers(1, max_labels + 1), replace=False)) for _ in range(n)]


def random_case(seed, n_q=7, n_g=11, ties=True):
    rng = np.random.default_rng(seed)
    # Few distinct values -> many ties; otherwise continuous.
    sim = rng.integers(0, 4, size=(n_q, n_g)).astype(float) if ties else rng.random((n_q, n_g))
    relevant = rng.random((n_q, n_g)) < 0.3
    relevant[0] = False  # always one query without relevant items
    return sim, relevant


def assert_metrics_equal(got, want):
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12, nan_ok=True), name


# --------------------------------------------------------------------------- relevance


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threshold", [None, 0.3, 0.5, 1.0])
def test_relevance_matrix_matches_naive(seed, threshold):
    rng = np.random.default_rng(seed)
    q, g = random_labels(rng, 6), random_labels(rng, 9)
    got = relevance_matrix(q, g, jaccard_threshold=threshold)
    assert got.dtype == bool and got.shape == (6, 9)
    np.testing.assert_array_equal(got, naive_relevance(q, g, threshold))


def test_relevance_single_label_strings_and_worked_jaccard():
    # A bare string is one label, not its characters.
    np.testing.assert_array_equal(relevance_matrix(["forest", "river"], ["river", "sea"]), [[0, 0], [1, 0]])
    # {a,b} vs {b,c}: Jaccard 1/3. {a,b} vs {a,b,c}: 2/3. Empty label sets never relevant.
    q, g = [["a", "b"]], [["b", "c"], ["a", "b", "c"], []]
    np.testing.assert_array_equal(relevance_matrix(q, g), [[1, 1, 0]])
    np.testing.assert_array_equal(relevance_matrix(q, g, jaccard_threshold=1 / 3), [[1, 1, 0]])
    np.testing.assert_array_equal(relevance_matrix(q, g, jaccard_threshold=0.5), [[0, 1, 0]])
    np.testing.assert_array_equal(relevance_matrix([[]], [[]], jaccard_threshold=0.5), [[0]])
    with pytest.raises(ValueError):
        relevance_matrix(q, g, jaccard_threshold=0.0)


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_label_relevance_counts_and_ranked_ids(threshold):
    rng = np.random.default_rng(3)
    q, g = random_labels(rng, 12), random_labels(rng, 20)
    dense = naive_relevance(q, g, threshold)
    rel = LabelRelevance(q, g, threshold)
    np.testing.assert_array_equal(rel.counts(chunk_size=5), dense.sum(1))
    ranked = rng.integers(-1, 20, size=(12, 4))  # -1 = FAISS padding
    want = np.array([[r >= 0 and dense[i, r] for r in row] for i, row in enumerate(ranked)])
    np.testing.assert_array_equal(rel.of_ranks(ranked), want)


# --------------------------------------------------------------------------- ranking metrics


def test_worked_example():
    # Ranking relevance [1, 0, 1, 0, 0], 3 relevant in the gallery (the third one is last, rank 6).
    sim = np.array([[6.0, 5, 4, 3, 2, 1]])
    rel = np.array([[1, 0, 1, 0, 0, 1]], dtype=bool)
    got = ranking_metrics(sim, rel, k=5)
    assert got["map@5"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert got["map@5_hits"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert got["p@5"] == pytest.approx(2 / 5)
    assert got["r_precision"] == pytest.approx(2 / 3)  # 2 hits in the top R = 3
    assert got["map"] == pytest.approx((1 / 1 + 2 / 3 + 3 / 6) / 3)
    assert got["n_queries"] == 1


def test_ties_break_by_gallery_index():
    # All similarities equal: ranking is 0, 1, 2, 3 -> relevant item 3 is last.
    got = ranking_metrics(np.zeros((1, 4)), np.array([[0, 0, 0, 1]], dtype=bool), k=2)
    assert got["p@2"] == 0.0 and got["map"] == pytest.approx(1 / 4)
    got = ranking_metrics(np.zeros((1, 4)), np.array([[1, 0, 0, 0]], dtype=bool), k=1)
    assert got["p@1"] == 1.0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 3, 5, 11, 20])
@pytest.mark.parametrize("ties", [True, False])
def test_ranking_matches_naive(seed, k, ties):
    sim, rel = random_case(seed, ties=ties)
    assert_metrics_equal(ranking_metrics(sim, rel, k), naive_ranking(sim, rel, k))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 4, 15])
def test_leave_one_out_exclude_matches_naive(seed, k):
    rng = np.random.default_rng(seed)
    labels = random_labels(rng, 12, max_labels=2)
    rel = relevance_matrix(labels, labels)
    sim = rng.integers(0, 3, size=(12, 12)).astype(float)
    np.fill_diagonal(sim, 10.0)  # the query itself would otherwise always be rank 1
    loo = np.eye(12, dtype=bool)
    got = ranking_metrics(sim, rel, k, exclude=loo)
    assert_metrics_equal(got, naive_ranking(sim, rel, k, exclude=loo))
    # Without exclusion the self-match inflates precision at 1.
    assert ranking_metrics(sim, rel, 1)["p@1"] == 1.0


def test_exclude_the_only_relevant_item_drops_the_query():
    sim = np.array([[0.9, 0.1, 0.2], [0.9, 0.1, 0.2]])
    rel = np.array([[1, 0, 0], [1, 0, 1]], dtype=bool)
    excl = np.array([[1, 0, 0], [1, 0, 0]], dtype=bool)
    got = ranking_metrics(sim, rel, 1, exclude=excl)
    assert got["n_queries"] == 1 and got["p@1"] == 1.0  # query 1: item 2 ranks first once item 0 is gone


def test_chunking_does_not_change_results():
    sim, rel = random_case(5, n_q=23, n_g=17)
    excl = np.random.default_rng(1).random((23, 17)) < 0.1
    whole = ranking_metrics(sim, rel, 4, exclude=excl)
    assert_metrics_equal(ranking_metrics(sim, rel, 4, exclude=excl, chunk_size=3), whole)


def test_no_relevant_anywhere_gives_nan_and_zero_queries():
    got = ranking_metrics(np.random.default_rng(0).random((3, 4)), np.zeros((3, 4), bool), k=2)
    assert got["n_queries"] == 0 and math.isnan(got["map@2"]) and math.isnan(got["map"])


def test_k_larger_than_gallery():
    sim = np.array([[0.3, 0.2, 0.1]])
    rel = np.array([[0, 1, 1]], dtype=bool)
    got = ranking_metrics(sim, rel, k=10)
    assert got["p@10"] == pytest.approx(2 / 10)  # fixed cutoff: divided by k
    assert got["map@10"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert got["map@10"] == pytest.approx(got["map"])


@pytest.mark.parametrize("seed", SEEDS)
def test_full_ap_matches_sklearn(seed):
    from sklearn.metrics import average_precision_score

    sim, rel = random_case(seed, n_q=9, n_g=30, ties=False)
    kept = [q for q in range(len(sim)) if rel[q].any()]
    want = np.mean([average_precision_score(rel[q], sim[q]) for q in kept])
    assert ranking_metrics(sim, rel, k=5)["map"] == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_topk_metrics_from_ranked_ids_matches_dense(seed):
    sim, rel = random_case(seed, n_q=10, n_g=25, ties=False)
    k = 6
    ranked = np.argsort(-sim, axis=1)[:, :k]  # what an exact index search returns
    got = topk_metrics(np.take_along_axis(rel, ranked, axis=1), rel.sum(1), k)
    dense = ranking_metrics(sim, rel, k)
    assert got.keys() == {f"map@{k}", f"map@{k}_hits", f"p@{k}", "n_queries"}
    for name in got:
        assert got[name] == pytest.approx(dense[name])


def test_topk_metrics_pads_short_rows():
    # An index that returned only 2 results for k=4: missing slots are misses.
    got = topk_metrics(np.array([[True, False]]), np.array([2]), k=4)
    assert got["p@4"] == pytest.approx(1 / 4)
    assert got["map@4"] == pytest.approx(1 / 2)
    assert got["map@4_hits"] == pytest.approx(1.0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        ranking_metrics(np.zeros((2, 3)), np.zeros((2, 4), bool), k=1)
    with pytest.raises(ValueError):
        ranking_metrics(np.zeros((2, 3)), np.zeros((2, 3), bool), k=0)


# --------------------------------------------------------------------------- recall@k


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [True, False])
def test_recall_matches_naive(seed, ties):
    sim, pos = random_case(seed, n_q=9, n_g=14, ties=ties)
    ks = (1, 2, 5, 10, 20)
    got = recall_at_k(sim, pos, ks=ks, chunk_size=4)
    assert got == pytest.approx(naive_recall(sim, pos, ks))


def test_recall_worked_example_and_mean_recall():
    # Query 0: positive at rank 1; query 1: positive at rank 3 (tie with item 0 loses on index).
    sim = np.array([[0.9, 0.5, 0.1, 0.0], [0.5, 0.9, 0.5, 0.1]])
    pos = np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=bool)
    t2i = recall_at_k(sim, pos, ks=(1, 5, 10))
    assert t2i == {"r@1": 50.0, "r@5": 100.0, "r@10": 100.0}
    i2t = {"r@1": 20.0, "r@5": 40.0, "r@10": 60.0}
    assert mean_recall(t2i, i2t) == pytest.approx((50 + 100 + 100 + 20 + 40 + 60) / 6)
    assert recall_at_k(sim, pos, ks=(2,)) == {"r@2": 50.0}


def test_integer_and_float32_similarities_rank_like_float64():
    sim, rel = random_case(2, n_q=8, n_g=12)
    want = ranking_metrics(sim, rel, 3)
    assert_metrics_equal(ranking_metrics(sim.astype(np.uint8), rel, 3), want)
    assert_metrics_equal(ranking_metrics(sim.astype(np.float32), rel, 3), want)
