"""Top-of-ranking strategies (pairs among each item's nearest neighbours in the current space whose
answer the closure does not imply) and blends of strategies."""

import numpy as np
import pytest

from rsir.active.pool import Pairs, random_pairs
from rsir.active.strategies import (
    BlendStrategy,
    SelectionContext,
    TopOfRankingStrategy,
    get_strategy,
    no_uncertainty,
    pick_top,
)


def grouped_context(n_labelled: int = 120, seed: int = 0) -> SelectionContext:
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(4), 10)
    emb = rng.normal(0, 1, (4, 8))[cls] + rng.normal(0, 0.5, (40, 8))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    labelled = random_pairs(40, n_labelled, rng)
    y = (cls[labelled.i] == cls[labelled.j]).astype(np.int8)
    return SelectionContext(emb, labelled, y, n_neighbours=5, n_random=200)


def naive_top_pairs(ctx: SelectionContext, k: int) -> set[tuple[int, int]]:
    """Brute force: (a, b) with b among a's k most similar others, not asked, answer not implied."""
    sims = ctx.emb @ ctx.emb.T
    np.fill_diagonal(sims, -np.inf)
    asked = set(zip(ctx.labelled.i.tolist(), ctx.labelled.j.tolist(), strict=True))
    comp, apart = ctx.closure().component, set(ctx.closure().apart.tolist())
    out = set()
    for a in range(ctx.n_items):
        for b in np.argsort(-sims[a], kind="stable")[:k]:
            lo, hi = min(a, int(b)), max(a, int(b))
            ca, cb = sorted((int(comp[lo]), int(comp[hi])))
            if (lo, hi) not in asked and ca != cb and (ca << 32 | cb) not in apart:
                out.add((lo, hi))
    return out


@pytest.mark.parametrize("k", [3, 6])
def test_top_of_ranking_asks_exactly_the_undecided_nearest_neighbour_pairs(k):
    ctx = grouped_context()
    naive = naive_top_pairs(ctx, k)
    assert 0 < len(naive) < 200
    strategy = TopOfRankingStrategy(no_uncertainty, pick_top, k=k)
    every = strategy.select(grouped_context(), len(naive), np.random.default_rng(0))
    assert set(zip(every.i.tolist(), every.j.tolist(), strict=True)) == naive
    some = strategy.select(grouped_context(), len(naive) // 2, np.random.default_rng(0))
    assert set(zip(some.i.tolist(), some.j.tolist(), strict=True)) <= naive


def test_top_of_ranking_fills_from_its_fallback_when_too_few_remain():
    ctx = grouped_context()
    n_top = len(naive_top_pairs(ctx, 3))
    picks = TopOfRankingStrategy(no_uncertainty, pick_top, k=3).select(ctx, n_top + 40, np.random.default_rng(0))
    assert len(picks) == n_top + 40 == len(np.unique(picks.keys()))
    assert not picks.mask_in(ctx.labelled).any()
    assert not (ctx.closure().implied(picks) >= 0).any()


def test_blend_gives_each_strategy_its_share_without_overlap():
    blend = BlendStrategy((("closure-top", 0.5), ("closure-mgue", 0.5)))
    picks = blend.select(grouped_context(), 21, np.random.default_rng(4))
    first = get_strategy("closure-top").select(grouped_context(), 10, np.random.default_rng(4))
    assert picks.take(np.arange(10)) == first
    assert len(picks) == 21 == len(np.unique(picks.keys()))
    ctx = grouped_context()
    assert not picks.mask_in(ctx.labelled).any()
    assert not (ctx.closure().implied(picks) >= 0).any()


def test_excluding_counts_picked_pairs_as_asked_without_changing_the_closure():
    ctx = grouped_context()
    picked = Pairs.from_arrays([0, 5, 7], [1, 9, 30]).difference(ctx.labelled)
    sub = ctx.excluding(picked)
    assert len(sub.labelled) == len(ctx.labelled) + len(picked)
    assert sub.labelled.take(np.arange(len(ctx.labelled))) == ctx.labelled
    assert (sub.labels[len(ctx.labelled) :] == -1).all()
    assert np.array_equal(sub.closure().component, ctx.closure().component)
    assert not sub.pool().mask_in(picked).any()
