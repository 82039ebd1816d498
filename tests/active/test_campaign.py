"""The round loop over the store, on tiny synthetic features (fast): rounds, answers, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from rsir.active.campaign import (
    CampaignLoop,
    CampaignSettings,
    advance,
    create_or_resume_campaign,
)
from rsir.active.learner import PairTraining
from rsir.active.oracle import LabelOracle
from rsir.active.pool import Pairs
from rsir.active.store import Store
from rsir.active.strategies import STRATEGIES, PoolStrategy, no_uncertainty, pick_top, register

FAST = PairTraining(steps=5, hidden=16, n_anchors=32)


def clustered(n_per: int = 8, n_cls: int = 5, dim: int = 12, seed: int = 0) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(n_cls), n_per)
    x = rng.normal(0, 1, (n_cls, dim))[cls] + rng.normal(0, 0.8, (len(cls), dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [(f"c{c}",) for c in cls]


def make_loop(tmp_path, strategy: str = "anneal-mgue", rounds: int = 3, evaluate=None, name: str = "t"):
    feats, labels = clustered()
    store = Store(tmp_path / "c.db")
    settings = CampaignSettings(
        strategy=strategy, seed=1, initial=10, per_round=6, rounds=rounds, n_neighbours=4, n_random=50, train=FAST
    )
    ids = [f"img{k}" for k in range(len(feats))]
    cid = create_or_resume_campaign(store, name, settings, ids, [f"/x/{i}.jpg" for i in ids])
    return CampaignLoop(store, cid, feats, evaluate), LabelOracle(labels)


def test_simulated_campaign_runs_every_round_without_repeating_a_pair(tmp_path):
    calls = []
    loop, oracle = make_loop(tmp_path, evaluate=lambda head: calls.append(head) or {"score": float(len(calls))})
    history = loop.run(oracle)
    assert [h["round"] for h in history] == [0, 1, 2, 3]
    assert [h["n_labelled"] for h in history] == [10, 16, 22, 28]
    assert [h["score"] for h in history] == [1.0, 2.0, 3.0, 4.0]  # the evaluation callback, once per round
    assert loop.done and len(calls) == 4
    i, j = loop.store.all_pairs(loop.id)
    assert len(i) == 28 and len(np.unique(Pairs(i, j).keys())) == 28 and (i < j).all()
    assert loop.head() is not None and loop.store.latest_checkpoint(loop.id).round == 3
    with pytest.raises(ValueError, match="finished"):
        loop.advance()


def test_every_strategy_runs_through_the_same_loop(tmp_path):
    for name in STRATEGIES:
        loop, oracle = make_loop(tmp_path, strategy=name, rounds=1, name=name)
        assert [h["n_labelled"] for h in loop.run(oracle)] == [10, 16]


def test_initial_pairs_do_not_depend_on_the_strategy(tmp_path):
    pairs = []
    for name in ("random", "mgue"):
        loop, _ = make_loop(tmp_path, strategy=name, name=name)
        loop.start()
        _, a, b = loop.store.pending(loop.id)
        pairs.append((a.tolist(), b.tolist()))
    assert pairs[0] == pairs[1]


def test_a_registered_strategy_is_used_without_touching_the_loop(tmp_path):
    if "test-closest" not in STRATEGIES:
        register("test-closest", PoolStrategy(lambda ctx: -ctx.pool_distances(), pick_top))
    loop, oracle = make_loop(tmp_path, strategy="test-closest", rounds=1)
    loop.run(oracle)
    i, j, y = loop.store.answered_pairs(loop.id)
    emb = loop.embeddings(None)
    chosen = 1 - np.einsum("md,md->m", emb[i[10:]], emb[j[10:]])
    assert chosen.max() < np.median(1 - np.einsum("md,md->m", emb[i[:10]], emb[j[:10]]))  # the closest pairs
    assert no_uncertainty is not None  # the registry's own pieces compose the same way


def test_people_answer_through_the_store_then_advance(tmp_path):
    loop, oracle = make_loop(tmp_path, rounds=1)
    loop.start()
    with pytest.raises(ValueError, match="unanswered"):
        loop.advance()
    answered = 0
    while (q := loop.store.next_pending_question(loop.id, f"person{answered % 2}")) is not None:
        label = oracle.answer(Pairs(np.array([q.item_a]), np.array([q.item_b])))[0]
        loop.store.record_answer(q.id, int(label), f"person{answered % 2}")
        answered += 1
    assert answered == 10 and loop.store.round_complete(loop.id)
    record = advance(loop.store, loop.id, loop.features)
    assert record["round"] == 0 and record["n_labelled"] == 10
    assert loop.current_round == 1 and len(loop.store.pending(loop.id)[0]) == 6


def test_skipped_answers_are_asked_once_and_not_trained_on(tmp_path):
    loop, _ = make_loop(tmp_path, rounds=1)

    class SkipAll:
        def answer(self, pairs: Pairs) -> np.ndarray:
            return np.full(len(pairs), -1, np.int8)

    history = loop.run(SkipAll())
    assert [h["n_labelled"] for h in history] == [0, 0]
    assert [h["n_skipped"] for h in history] == [10, 16]
    i, j = loop.store.all_pairs(loop.id)
    assert len(np.unique(Pairs(i, j).keys())) == 16


def test_features_must_match_the_campaign(tmp_path):
    loop, _ = make_loop(tmp_path)
    with pytest.raises(ValueError, match="items"):
        CampaignLoop(loop.store, loop.id, loop.features[:-1])


def test_settings_round_trip():
    s = CampaignSettings(strategy="bcgue", seed=3, train=PairTraining(steps=7), extra={"archive": "/a"})
    assert CampaignSettings.from_dict(s.to_dict()) == s


def test_the_app_can_reload_a_campaigns_features_from_its_settings(tmp_path, demo_archive):
    from rsir.active.campaign import campaign_features
    from rsir.cbir.space import Space

    emb = Space.load().embed(demo_archive, progress=False)
    ids = emb.ids[::3]
    store = Store(tmp_path / "c.db")
    settings = CampaignSettings(strategy="mgue", extra={"archive": str(demo_archive.root)})
    cid = create_or_resume_campaign(store, "app", settings, ids)
    assert np.array_equal(campaign_features(store, cid), emb.vectors[::3])
    bare = create_or_resume_campaign(store, "bare", CampaignSettings(strategy="mgue"), ids)
    with pytest.raises(ValueError, match="no archive"):
        campaign_features(store, bare)


def test_rounds_report_where_their_information_came_from(tmp_path):
    loop, oracle = make_loop(tmp_path, strategy="neighbours", rounds=2)
    history = loop.run(oracle)
    assert history[0]["round_model_right"] is None  # no model picked the initial pairs
    i, j, y = loop.store.answered_pairs(loop.id)
    for h, (lo, hi) in zip(history, [(0, 10), (10, 16), (16, 22)], strict=True):
        assert h["round_similar"] == pytest.approx(float((y[lo:hi] == 1).mean()), abs=1e-4)
    assert all(0.0 <= h["round_model_right"] <= 1.0 for h in history[1:])


def test_a_campaign_stored_before_implied_pairs_keeps_its_learner():
    stored = CampaignSettings(strategy="mgue", train=PairTraining(closure=0.7)).to_dict()
    assert CampaignSettings.from_dict(stored).train.closure == 0.7
    del stored["train"]["closure"]  # as written before the option existed
    assert CampaignSettings.from_dict(stored).train.closure == 0.0
    grouped = CampaignSettings(strategy="mgue", train=PairTraining(groups=0.3)).to_dict()
    assert CampaignSettings.from_dict(grouped).train.groups == 0.3
    del grouped["train"]["groups"]  # stored before the group objective existed
    assert CampaignSettings.from_dict(grouped).train.groups == 0.0
    assert CampaignSettings.from_dict(grouped).train.preserve == PairTraining().preserve == 3.0  # stored: kept
    del grouped["train"]["preserve"]
    assert CampaignSettings.from_dict(grouped).train.preserve == 10.0  # the learner's default before issue 17
