"""Scores over the full gallery: a caption hits only its own pair; a pair hits any of its captions."""

from __future__ import annotations

import numpy as np
import pytest

from rsir.itsr.evaluate import retrieval_scores


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
