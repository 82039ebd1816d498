"""Scores over the full gallery: a caption hits only its own pair; a pair hits any of its captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsir.data.changecap import ChangePair
from rsir.itsr.evaluate import (
    embed_split,
    retrieval_scores,
    same_text_positives,
    shuffle_before,
    subset_scores,
)
from rsir.itsr.features import SplitFeatures
from rsir.metrics.retrieval import recall_at_k


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


def test_duplicate_aware_positives_match_a_naive_loop():
    captions = ["No change.", "A road appeared.", "no  change.", "Houses appeared.", "A road appeared.", "X."]
    caption_pair = np.array([0, 0, 1, 1, 2, 3])
    same = same_text_positives(captions, caption_pair, 4)
    norm = [" ".join(c.lower().split()) for c in captions]
    for m in range(len(captions)):
        for n in range(4):
            want = any(norm[j] == norm[m] for j in range(len(captions)) if caption_pair[j] == n)
            assert same[m, n] == want, (m, n)
    assert same[np.arange(len(captions)), caption_pair].all()  # a caption always hits its own pair


def test_duplicate_aware_t2i_counts_a_twin_pair_as_a_hit():
    # Pairs 0 and 1 share the caption "Nothing has changed."; the model ranks pair 1 first for pair 0's copy.
    pairs = _unit([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    text = _unit([[1, 0.1, 0], [1, 0, 0], [0, 0, 1]])
    caption_pair = np.array([0, 1, 2])
    captions = ["Nothing has changed.", "Nothing has changed.", "A road appeared."]
    sim = text @ pairs.T
    own = recall_at_k(sim, caption_pair[:, None] == np.arange(3)[None, :], ks=(1,))
    dup = recall_at_k(sim, same_text_positives(captions, caption_pair, 3), ks=(1,))
    assert own["r@1"] == pytest.approx(200 / 3) and dup["r@1"] == 100.0


def _features(n: int = 7, seed: int = 0) -> SplitFeatures:
    rng = np.random.default_rng(seed)
    pairs = [ChangePair(f"test/{i}", Path(f"a{i}"), Path(f"b{i}"), (f"cap {i}",), i % 2 == 0, "test") for i in range(n)]
    return SplitFeatures(
        pairs,
        rng.normal(size=(n, 2, 4)).astype(np.float32),
        rng.normal(size=(n, 2, 9, 3)).astype(np.float16),
        rng.normal(size=(n, 5)).astype(np.float32),
        np.arange(n),
        np.arange(n + 1),
    )


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_shuffle_before_moves_every_before_image_and_keeps_the_rest(n: int):
    feats = _features(n)
    shuffled = shuffle_before(feats, seed=1)
    # Each pair's before row is some OTHER pair's before row (globals and tokens alike); naive lookup.
    for i in range(n):
        src = [j for j in range(n) if np.array_equal(shuffled.globals_[i, 0], feats.globals_[j, 0])]
        assert len(src) == 1 and src[0] != i
        assert np.array_equal(shuffled.tokens[i, 0], feats.tokens[src[0], 0])
    assert sorted(
        int(np.flatnonzero((feats.globals_[:, 0] == shuffled.globals_[i, 0]).all(1))[0]) for i in range(n)
    ) == list(range(n))  # a permutation: every before image is used once
    assert np.array_equal(shuffled.globals_[:, 1], feats.globals_[:, 1])
    assert np.array_equal(shuffled.tokens[:, 1], feats.tokens[:, 1])
    assert shuffled.pairs == feats.pairs and shuffled.text is feats.text
    again = shuffle_before(feats, seed=1)
    assert np.array_equal(again.globals_, shuffled.globals_)  # seeded
    assert feats.globals_[0, 0].tolist() != shuffled.globals_[0, 0].tolist()  # the input is untouched...
    assert np.array_equal(feats.globals_, _features(n).globals_)  # ...really


def test_evaluate_detail_blocks_and_shuffled_control_with_a_real_model():
    import torch

    from rsir.itsr.evaluate import evaluate
    from rsir.itsr.model import ITSRConfig, ITSRModel

    feats = _features(12)
    torch.manual_seed(0)
    config = ITSRConfig("gff-concat+diff", "e", "h", 4, 3, 9, "t", "h", 5, dim=8)
    model = ITSRModel(config)
    out = evaluate(model, feats, detail=True)
    assert set(out) >= {"t2i", "i2t", "mR", "gallery_size", "t2i_dup", "changed", "unchanged"}
    assert out["changed"]["pairs"] == 6 and out["unchanged"]["pairs"] == 6
    assert "t2i_dup" in out["changed"] and "shuffled_before_seed" not in out
    pair_emb, text_emb = embed_split(model, feats)
    assert out["changed"] == {
        **subset_scores(text_emb @ pair_emb.T, feats.caption_pair, feats.changed),
        "t2i_dup": out["changed"]["t2i_dup"],
    }
    shuffled = evaluate(model, feats, detail=True, shuffle_seed=3)
    assert shuffled["shuffled_before_seed"] == 3
    want_pairs, _ = embed_split(model, shuffle_before(feats, 3))
    got = retrieval_scores(want_pairs, text_emb, feats.caption_pair)
    assert shuffled["mR"] == pytest.approx(got["mR"])
