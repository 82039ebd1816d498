"""Hard implied pairs: the learner trains on the implied pairs of largest loss among an oversampled draw."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rsir.active.campaign import CampaignSettings
from rsir.active.learner import PairTraining, _hardest, train_head
from rsir.models.heads import HeadConfig, ResidualHead


@pytest.mark.parametrize("mining", [2, 3, 4])
def test_hardest_keeps_the_largest_loss_share_of_each_kind(mining):
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(30, 8), dim=1)
    head = ResidualHead(HeadConfig(in_dim=8, hidden=16)).eval()
    gen = np.random.default_rng(1)
    ii, jj = (torch.from_numpy(gen.integers(0, 30, 41)) for _ in range(2))
    sim = torch.from_numpy(gen.random(41) < 0.4)
    config = PairTraining(closure_mining=mining)
    hi, hj, hs = _hardest(head, x, ii, jj, sim, config)
    with torch.no_grad():
        h = head(x).numpy()
    cos = (h[ii.numpy()] * h[jj.numpy()]).sum(1)
    for kind in (True, False):  # naive: sort each kind's pairs by loss, keep the top ceil(n / mining)
        rows = np.flatnonzero(sim.numpy() == kind)
        loss = config.pos_margin - cos[rows] if kind else cos[rows] - config.neg_margin
        want = rows[np.argsort(-loss, kind="stable")[: -(-len(rows) // mining)]]
        got = {(int(a), int(b)) for a, b, s in zip(hi, hj, hs, strict=True) if bool(s) == kind}
        assert got == {(int(ii[r]), int(jj[r])) for r in want}


def test_hard_implied_pairs_train_and_are_seeded():
    rng = np.random.default_rng(0)
    cls = np.repeat(np.arange(3), 10)
    x = rng.normal(0, 1, (3, 8))[cls] + rng.normal(0, 0.8, (30, 8))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    i, j = rng.integers(0, 30, 60), rng.integers(0, 30, 60)
    y = (cls[i] == cls[j]).astype(np.int8)
    config = PairTraining(steps=10, hidden=16, n_anchors=16, closure=1.0, closure_mining=4)
    a, b = (train_head(x, i, j, y, config, seed=3) for _ in range(2))
    plain = train_head(x, i, j, y, replace(config, closure_mining=1), seed=3)
    xs = torch.from_numpy(x)
    with torch.no_grad():
        assert torch.equal(a(xs), b(xs))
        assert not torch.equal(a(xs), plain(xs))


def test_campaigns_stored_before_mining_resume_and_draw_uniformly():
    old = CampaignSettings("closure-mgue").to_dict()
    assert "closure_mining" not in old["train"]  # the default is stored as campaigns were before it
    assert CampaignSettings.from_dict(old).train.closure_mining == 1
    mined = CampaignSettings("closure-mgue", train=PairTraining(closure_mining=4)).to_dict()
    assert CampaignSettings.from_dict(mined).train.closure_mining == 4
