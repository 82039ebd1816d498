"""ANNEAL's initial round asks both kinds of pairs, on a small archive too (the embedded demo)."""

import json
from pathlib import Path

import numpy as np

from rsir.active.campaign import CampaignSettings, _rng
from rsir.active.oracle import LabelOracle
from rsir.active.simulate import SimulationConfig
from rsir.active.strategies import SelectionContext, get_strategy


def _initial_answers(vectors: np.ndarray, oracle: LabelOracle, strategy: str, budget: int, seed: int) -> np.ndarray:
    s = CampaignSettings(strategy="anneal-mgue", seed=seed)  # the defaults a campaign runs with
    ctx = SelectionContext(vectors, n_neighbours=s.n_neighbours, n_random=s.n_random,
                           pool_seed=int(_rng(seed, 0, 1).integers(2**31)))  # fmt: skip
    pairs = get_strategy(strategy).select(ctx, budget, _rng(seed, 0, 2))
    assert len(pairs) == budget and len(np.unique(pairs.keys())) == budget
    return oracle.answer(pairs)


def test_default_initial_round_holds_both_answers_on_the_demo(demo_index: Path) -> None:
    vectors = np.load(demo_index / "vectors.npy")
    labels = json.loads((demo_index / "manifest.json").read_text())["labels"]
    oracle = LabelOracle(labels)
    default = CampaignSettings(strategy="anneal-mgue").initial_strategy
    assert default == SimulationConfig().initial_strategy == "mixed"
    shares = []
    for seed in range(10):
        answers = _initial_answers(vectors, oracle, default, 20, seed)
        assert 0 < answers.sum() < len(answers)  # both answers, every seed
        shares.append(answers.mean())
    assert 0.3 < np.mean(shares) < 0.7
    # the old default (uniform over the pool) asks mostly dissimilar pairs on a 168-item archive
    old = [_initial_answers(vectors, oracle, "neighbours", 20, seed).mean() for seed in range(10)]
    assert np.mean(old) < np.mean(shares) - 0.15
