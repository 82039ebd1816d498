import numpy as np
import pytest

from rsir.active.oracle import LabelOracle
from rsir.active.pool import Pairs, random_pairs
from rsir.active.strategies import (
    STRATEGIES,
    PoolStrategy,
    SelectionContext,
    get_strategy,
    mgue,
    pick_top,
    register,
)
from rsir.active.uncertainty import pair_distance


def clustered_context(n_labelled: int = 40, seed: int = 0, **kw) -> tuple[SelectionContext, LabelOracle]:
    """Six classes on the unit circle (8-d embedding, noise off the circle); labels from classes."""
    rng = np.random.default_rng(seed)
    n_per, n_cls = 12, 6
    cls = np.repeat(np.arange(n_cls), n_per)
    ang = cls * 2 * np.pi / n_cls + rng.normal(0, 0.25, len(cls))
    emb = np.zeros((len(cls), 8), np.float32)
    emb[:, 0], emb[:, 1] = np.cos(ang), np.sin(ang)
    emb[:, 2:] = rng.normal(0, 0.2, (len(cls), 6))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    oracle = LabelOracle([[f"c{c}"] for c in cls])
    labelled = random_pairs(len(emb), n_labelled, rng)
    kw = {"n_neighbours": 5, "n_random": 300} | kw
    return SelectionContext(emb, labelled, oracle.answer(labelled), **kw), oracle


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_budget_unique_unlabelled_pairs(name):
    ctx, _ = clustered_context()
    picks = get_strategy(name).select(ctx, 15, np.random.default_rng(1))
    assert len(picks) == 15
    assert (picks.i < picks.j).all() and picks.i.dtype == np.int64 and picks.j.dtype == np.int64
    assert len(np.unique(picks.keys())) == 15
    assert not picks.mask_in(ctx.labelled).any()
    again = get_strategy(name).select(clustered_context()[0], 15, np.random.default_rng(1))
    assert picks == again  # seeded end to end


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_never_return_skipped_pairs_or_more_than_exist(name):
    ctx, _ = clustered_context(n_labelled=0, n_neighbours=2, n_random=0)
    ctx = SelectionContext(ctx.emb, ctx.pool().take(np.arange(10)), np.full(10, -1, np.int8), 2, 0)
    picks = get_strategy(name).select(ctx, 10_000, np.random.default_rng(0))
    assert not picks.mask_in(ctx.labelled).any()
    assert len(np.unique(picks.keys())) == len(picks) > 0
    assert len(get_strategy(name).select(ctx, 0, np.random.default_rng(0))) == 0


def test_mgue_picks_the_pool_pairs_closest_to_the_threshold():
    ctx, _ = clustered_context()
    picks = get_strategy("mgue").select(ctx, 10, np.random.default_rng(0))
    t = ctx.info["threshold"]
    gap_picked = np.abs(pair_distance(ctx.emb, picks) - t)
    gap_pool = np.sort(np.abs(ctx.pool_distances() - t))
    np.testing.assert_allclose(np.sort(gap_picked), gap_pool[:10], atol=1e-6)


def test_threshold_separates_the_classes():
    ctx, oracle = clustered_context(n_labelled=200)
    mgue(ctx)
    d, y = pair_distance(ctx.emb, ctx.pool()), oracle.answer(ctx.pool())
    acc = np.mean((d <= ctx.info["threshold"]) == (y == 1))
    assert acc > 0.85


def test_bcgue_falls_back_to_mgue_with_one_class():
    ctx, oracle = clustered_context()
    same = ctx.labels == 1
    ctx = SelectionContext(ctx.emb, ctx.labelled.take(same), ctx.labels[same], 5, 300)
    picks = get_strategy("bcgue").select(ctx, 5, np.random.default_rng(0))
    assert ctx.info["classifier"] == "fallback-mgue" and "threshold" in ctx.info and len(picks) == 5
    full, _ = clustered_context()
    get_strategy("bcgue").select(full, 5, np.random.default_rng(0))
    assert full.info["classifier"] == "fitted"


def test_anneal_picks_come_from_the_most_uncertain_preselection():
    ctx, _ = clustered_context(n_labelled=100)
    spread = get_strategy("anneal-mgue").select(ctx, 6, np.random.default_rng(0))
    gap = np.abs(ctx.pool_distances() - ctx.info["threshold"])
    preselected = ctx.pool().take(np.argsort(gap)[:60])
    assert spread.mask_in(preselected).all()
    plain = get_strategy("mgue").select(ctx, 6, np.random.default_rng(0))
    assert spread != plain


def test_random_strategy_draws_outside_the_pool():
    ctx, _ = clustered_context(n_neighbours=1, n_random=0)
    picks = get_strategy("random").select(ctx, 200, np.random.default_rng(0))
    assert (~picks.mask_in(ctx.pool())).sum() > 100


def test_registry():
    with pytest.raises(KeyError, match="known: random"):
        get_strategy("nope")
    with pytest.raises(ValueError):
        register("mgue", PoolStrategy(mgue, pick_top))
    register("test-only-top-mgue", PoolStrategy(mgue, pick_top))
    try:
        ctx, _ = clustered_context()
        assert len(get_strategy("test-only-top-mgue").select(ctx, 3, np.random.default_rng(0))) == 3
    finally:
        del STRATEGIES["test-only-top-mgue"]


def test_context_checks_lengths():
    with pytest.raises(ValueError):
        SelectionContext(np.zeros((3, 2), np.float32), Pairs.from_arrays([0], [1]), np.array([], np.int8))
    with pytest.raises(ValueError, match="canonical"):
        SelectionContext(np.zeros((3, 2), np.float32), Pairs(np.array([2]), np.array([1])), np.array([1]))
