"""Scores over the full gallery: a caption hits only its own pair; a pair hits any of its captions."""

from __future__ import annotations

import numpy as np
import pytest

from rsir.itsr.evaluate import retrieval_scores, subset_scores


def _unit(rows: list[list[float]]) -> np.ndarray:
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_perfect_embeddings_score_100():
    pairs = np.eye(4, dtype=np.float32)
    caption_pair = np.repeat(np.arange(4), 3)
    scores = retrieval_scores(pairs, pairs[caption_pair], caption_pair)
    assert scores["t2i"] == {"r@1": 100.0, "r@5": 100.0, "r@10": 100.0}
    assert scores["i2t"]["r@1"] == 100.0 and scores["mR"] == 100.0
    assert scores["gallery_size"] == 4


def test_caption_hits_only_its_own_pair():
    # Pairs 0 and 1 are indistinguishable (e.g. two no-change pairs); pair 2 is elsewhere.
    pairs = _unit([[1, 0], [1, 0], [0, 1]])
    text = _unit([[1, 0], [1, 0], [0, 1]])
    caption_pair = np.array([0, 1, 2])
    scores = retrieval_scores(pairs, text, caption_pair)
    # Caption of pair 1 ranks pair 0 first (tie -> lower index): a miss at R@1, a hit at R@5.
    assert scores["t2i"]["r@1"] == pytest.approx(200 / 3)
    assert scores["t2i"]["r@5"] == 100.0
    assert scores["i2t"]["r@1"] == pytest.approx(200 / 3)


def test_pair_hits_any_of_its_captions():
    pairs = _unit([[1, 0, 0], [0, 1, 0]])
    # Pair 0's first caption is far off, its second is close: the pair still hits at R@1.
    text = _unit([[0, 1, 0.2], [1, 0.1, 0], [0.1, 1, 0]])
    caption_pair = np.array([0, 0, 1])
    scores = retrieval_scores(pairs, text, caption_pair)
    assert scores["i2t"]["r@1"] == 100.0
    assert scores["t2i"]["r@1"] == pytest.approx(200 / 3)  # the far caption misses its pair


def test_no_change_pairs_stay_in_the_gallery():
    # A large gallery of near-duplicate "no change" pairs makes retrieval harder, never easier.
    rng = np.random.default_rng(0)
    changed = _unit(rng.normal(size=(5, 8)).tolist())
    text = changed + 0.3 * rng.normal(size=changed.shape).astype(np.float32)
    only_changed = retrieval_scores(changed, text, np.arange(5))
    distractors = _unit((changed[:1] + 0.05 * rng.normal(size=(50, 8))).tolist())
    full = retrieval_scores(np.concatenate([changed, distractors]), text, np.arange(5))
    assert full["gallery_size"] == 55
    assert full["t2i"]["r@1"] <= only_changed["t2i"]["r@1"]


def _naive_recall(sim: np.ndarray, positives: np.ndarray, k: int) -> float:
    hits = [any(positives[q, g] for g in np.argsort(-sim[q], kind="stable")[:k]) for q in range(len(sim))]
    return 100 * float(np.mean(hits))


def test_subset_scores_match_a_naive_loop_over_the_full_gallery():
    rng = np.random.default_rng(3)
    n_pairs, per_pair = 30, 3
    caption_pair = np.repeat(np.arange(n_pairs), per_pair)
    pair_emb = _unit(rng.normal(size=(n_pairs, 6)).tolist())
    text_emb = _unit((pair_emb[caption_pair] + 0.9 * rng.normal(size=(n_pairs * per_pair, 6))).tolist())
    sim = text_emb @ pair_emb.T
    subset = rng.random(n_pairs) < 0.4
    scores = subset_scores(sim, caption_pair, subset)
    positives = caption_pair[:, None] == np.arange(n_pairs)[None, :]
    text_rows = np.flatnonzero(subset[caption_pair])
    pair_rows = np.flatnonzero(subset)
    for k in (1, 5, 10):
        # Queries are the subset's, but each still ranks the whole gallery (not just the subset).
        assert scores["t2i"][f"r@{k}"] == pytest.approx(_naive_recall(sim[text_rows], positives[text_rows], k))
        assert scores["i2t"][f"r@{k}"] == pytest.approx(_naive_recall(sim.T[pair_rows], positives.T[pair_rows], k))
    assert scores["pairs"] == subset.sum()
    assert scores["mR"] == pytest.approx(np.mean([*scores["t2i"].values(), *scores["i2t"].values()]))
