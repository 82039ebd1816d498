"""The per-round head: identity without answers, learns from answers, stays near the encoder space."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rsir.active.learner import PairTraining, train_head
from rsir.active.oracle import LabelOracle
from rsir.active.pool import random_pairs
from rsir.embed.features import apply_head
from rsir.train.pair_losses import pair_loss

FAST = PairTraining(steps=60, hidden=32, n_anchors=64, lr=3e-3)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def two_views(n_per: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Classes separated along dims 0-2, plus a strong class-independent nuisance along dims 3-5."""
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(3), n_per)
    x = np.zeros((len(cls), 8), np.float32)
    x[np.arange(len(cls)), cls] = 0.6
    x[:, 3:6] = rng.normal(0, 0.6, (len(cls), 3))
    x[:, 6:] = rng.normal(0, 0.05, (len(cls), 2))
    return x / np.linalg.norm(x, axis=1, keepdims=True), cls


def separation(emb: np.ndarray, cls: np.ndarray) -> float:
    """Mean same-class cosine minus mean other-class cosine."""
    sim = emb @ emb.T
    same = cls[:, None] == cls[None, :]
    off = ~np.eye(len(cls), dtype=bool)
    return float(sim[same & off].mean() - sim[~same].mean())


def test_no_usable_answer_leaves_the_identity():
    x, _ = two_views()
    head = train_head(x, np.array([0, 1]), np.array([2, 3]), np.array([-1, -1]), FAST)
    assert np.allclose(apply_head(x, head), x, atol=1e-6)


def test_answers_pull_classes_apart():
    x, cls = two_views()
    oracle = LabelOracle([[str(c)] for c in cls])
    pairs = random_pairs(len(x), 300, np.random.default_rng(0))
    head = train_head(x, pairs.i, pairs.j, oracle.answer(pairs), FAST, seed=1)
    assert separation(apply_head(x, head), cls) > separation(x, cls) + 0.05


def test_warm_start_continues_from_the_given_head():
    x, cls = two_views()
    oracle = LabelOracle([[str(c)] for c in cls])
    pairs = random_pairs(len(x), 200, np.random.default_rng(0))
    y = oracle.answer(pairs)
    first = train_head(x, pairs.i, pairs.j, y, FAST, seed=1)
    again = train_head(x, pairs.i, pairs.j, y, PairTraining(steps=0, epochs=0, hidden=32), init=first)
    assert np.allclose(apply_head(x, again), apply_head(x, first), atol=1e-6)  # zero steps: same head


def test_preservation_keeps_the_space_when_answers_are_few():
    x, cls = two_views()
    i, j, y = np.array([0, 0, 20]), np.array([1, 40, 41]), np.array([1, 0, 0])  # one similar answer
    free = train_head(x, i, j, y, PairTraining(steps=60, hidden=32, lr=3e-3, preserve=0, evidence=0))
    kept = train_head(x, i, j, y, FAST)
    drift = [float(np.abs(apply_head(x, h) @ apply_head(x, h).T - x @ x.T).mean()) for h in (free, kept)]
    assert drift[1] < drift[0] / 2


def test_pair_loss_is_class_balanced_and_weighted():
    cos = torch.tensor([0.5, 0.9, 0.9, 0.9])
    similar = torch.tensor([True, False, False, False])
    # similar: relu(1 - 0.5) = 0.5; dissimilar: mean relu(0.9 - 0.5) = 0.4, whatever their number
    assert float(pair_loss(cos, similar, 1.0, 0.5)) == pytest.approx(0.9)
    assert float(pair_loss(cos, similar, 1.0, 0.5, (0.5, 1.0))) == pytest.approx(0.65)
    assert float(pair_loss(cos[1:], similar[1:], 1.0, 0.5)) == pytest.approx(0.4)  # no similar pair at all


def test_implied_pairs_teach_what_the_answers_only_imply():
    """Chains of similar answers within each class (a~b, b~c, ...) and one dissimilar answer between
    classes: the closure implies every within- and cross-class pair; training on them separates the
    classes more than the direct answers alone."""
    x, cls = two_views()
    firsts = [np.flatnonzero(cls == c)[0] for c in range(3)]
    i = np.concatenate([np.flatnonzero(cls == c)[:-1] for c in range(3)] + [np.array(firsts[:2] + firsts[:1])])
    j = np.concatenate([np.flatnonzero(cls == c)[1:] for c in range(3)] + [np.array(firsts[1:] + firsts[2:])])
    y = (cls[i] == cls[j]).astype(np.int8)
    loose = PairTraining(steps=60, hidden=32, n_anchors=64, lr=3e-3, preserve=1.0)  # let the answers move it
    direct = train_head(x, i, j, y, replace(loose, closure=0.0), seed=1)
    closed = train_head(x, i, j, y, replace(loose, closure=1.0), seed=1)
    assert separation(apply_head(x, closed), cls) > separation(apply_head(x, direct), cls) + 0.05


def test_group_batches_mark_same_group_and_groups_apart_like_the_closure():
    """Naive reference: a batch pair is relevant iff the closure implies it similar, known iff it implies
    anything; every batch item is in a group of >= 2 or in a group with an "apart" answer."""
    from rsir.active.closure import closure_of
    from rsir.active.learner import _group_batches
    from rsir.active.pool import Pairs

    i, j, y = np.array([0, 1, 4, 5, 0, 7, 9]), np.array([1, 2, 5, 6, 4, 8, 3]), np.array([1, 1, 1, 1, 0, 0, 1])
    closure = closure_of(12, i, j, y)
    batches = _group_batches(closure, 5, PairTraining(batch_size=6), seed=0)
    assert len(batches) == 5
    for items, relevant, known in batches:
        items = items.numpy()
        assert set(items) <= {0, 1, 2, 4, 5, 6, 7, 8, 3, 9}  # 10, 11: alone and never answered apart
        a, b = np.meshgrid(items, items, indexing="ij")
        implied = closure.implied(Pairs(a.ravel(), b.ravel())).reshape(a.shape)
        assert np.array_equal(relevant.numpy(), implied == 1)
        assert np.array_equal(known.numpy(), implied >= 0)
    assert _group_batches(closure_of(12, i[:4], j[:4], y[:4]), 5, PairTraining(), seed=0) is None  # none apart


def test_group_objective_teaches_the_groups_the_answers_join():
    """Chains of similar answers within each class, one dissimilar answer between each two: the group
    objective (the all-labels head's loss on the groups) separates the classes more than the pairs alone."""
    x, cls = two_views()
    firsts = [np.flatnonzero(cls == c)[0] for c in range(3)]
    i = np.concatenate([np.flatnonzero(cls == c)[:-1] for c in range(3)] + [np.array(firsts[:2] + firsts[:1])])
    j = np.concatenate([np.flatnonzero(cls == c)[1:] for c in range(3)] + [np.array(firsts[1:] + firsts[2:])])
    y = (cls[i] == cls[j]).astype(np.int8)
    loose = PairTraining(steps=60, hidden=32, n_anchors=64, lr=3e-3, preserve=1.0, closure=0.0, batch_size=24)
    pairs_only = train_head(x, i, j, y, loose, seed=1)
    grouped = train_head(x, i, j, y, replace(loose, groups=1.0), seed=1)
    assert separation(apply_head(x, grouped), cls) > separation(apply_head(x, pairs_only), cls) + 0.05
