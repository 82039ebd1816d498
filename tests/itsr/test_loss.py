"""InfoNCE and the one-caption-per-pair batches: a pair's own captions are never its negatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsir.train.itsr import caption_batches, info_nce, scene_groups


def _naive(logits: torch.Tensor, drop: set[tuple[int, int]]) -> torch.Tensor:
    """Symmetric cross-entropy written out with explicit loops, skipping the dropped cells."""
    b = logits.shape[0]
    total = 0.0
    for i in range(b):
        row = [logits[i, j] for j in range(b) if (i, j) not in drop]
        col = [logits[j, i] for j in range(b) if (j, i) not in drop]
        total += -logits[i, i] + torch.logsumexp(torch.stack(row), 0)
        total += -logits[i, i] + torch.logsumexp(torch.stack(col), 0)
    return total / (2 * b)


def _emb(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, 8, generator=g), dim=1), F.normalize(torch.randn(b, 8, generator=g), dim=1)


def test_info_nce_matches_the_naive_symmetric_loss():
    img, txt = _emb(6, 0)
    logits = 10.0 * img @ txt.T
    assert torch.allclose(info_nce(img, txt, 10.0), _naive(logits, set()), atol=1e-5)


def test_same_pair_and_same_text_are_not_negatives():
    img, txt = _emb(5, 1)
    pair_ids = torch.tensor([0, 1, 0, 2, 3])  # rows 0 and 2: one pair with two captions
    keys = torch.tensor([0, 1, 2, 3, 1])  # rows 1 and 4: identical caption text
    drop = {(0, 2), (2, 0), (1, 4), (4, 1)}
    logits = 7.0 * img @ txt.T
    got = info_nce(img, txt, 7.0, pair_ids=pair_ids, text_keys=keys)
    assert torch.allclose(got, _naive(logits, drop), atol=1e-5)
    # Moving the pair's other caption onto image 0 changes nothing for the masked pairing.
    txt2 = txt.clone()
    txt2[2] = img[0]
    moved = info_nce(img, txt2, 7.0, pair_ids=pair_ids, text_keys=keys)
    base_rows = _naive(7.0 * img @ txt2.T, drop)
    assert torch.allclose(moved, base_rows, atol=1e-5)
    unmasked = info_nce(img, txt2, 7.0)
    assert unmasked > moved  # without the mask, a true caption would be punished as a negative


def test_caption_batches_one_caption_per_pair_each_epoch():
    counts = np.array([5, 5, 1, 3, 5, 2, 5])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rng = np.random.default_rng(0)
    seen_captions = set()
    for _ in range(60):
        batches = caption_batches(offsets, batch_size=3, rng=rng)
        pairs = np.concatenate([p for p, _ in batches])
        assert sorted(pairs.tolist()) == list(range(len(counts)))  # every pair exactly once
        for p, c in batches:
            assert len(set(p.tolist())) == len(p)  # never the same pair twice in a batch
            assert ((c >= offsets[p]) & (c < offsets[p + 1])).all()  # the caption is the pair's own
            assert len(p) >= 2
            seen_captions.update(c.tolist())
    assert seen_captions == set(range(offsets[-1]))  # over epochs, every caption gets sampled


def test_last_batch_of_one_is_merged():
    offsets = np.arange(0, 5 * 5, 5)  # 4 pairs
    batches = caption_batches(offsets, batch_size=3, rng=np.random.default_rng(1))
    assert [len(p) for p, _ in batches] == [4]


def test_sibling_batches_keep_each_scene_group_in_one_batch():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 6, size=50)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    groups = rng.integers(0, 20, size=50)  # groups of 0-7 pairs
    groups[groups == 3] = 4  # one larger group
    for epoch in range(10):
        batches = caption_batches(offsets, batch_size=8, rng=np.random.default_rng(epoch), groups=groups)
        pairs = np.concatenate([p for p, _ in batches])
        assert sorted(pairs.tolist()) == list(range(50))  # every pair exactly once
        for p, c in batches:
            assert len(p) <= 8 + 1 and len(p) >= 2
            assert ((c >= offsets[p]) & (c < offsets[p + 1])).all()
        where = {int(i): b for b, (p, _) in enumerate(batches) for i in p}
        for g in np.unique(groups):
            members = np.flatnonzero(groups == g)
            if len(members) <= 8:  # a group that fits a batch is never cut
                assert len({where[int(i)] for i in members}) == 1
    # naive reference: a group larger than the batch is cut into full batches
    big = caption_batches(np.arange(0, 11 * 2, 2), batch_size=4, rng=np.random.default_rng(0), groups=np.zeros(10))
    assert [len(p) for p, _ in big] == [4, 4, 2]


def test_scene_groups_read_the_before_scene_and_leave_other_pairs_alone():
    from rsir.data.changecap import ChangePair

    def pair(i: int, scene: str | None) -> ChangePair:
        meta = {"scene": scene} if scene else {}
        return ChangePair(f"train/{i}", Path("a"), Path("b"), ("x",), True, "train", meta)

    g = scene_groups([pair(0, "forest/1"), pair(1, None), pair(2, "forest/1"), pair(3, None), pair(4, "river/2")])
    assert g[0] == g[2] and len(set(g.tolist())) == 4


def test_resume_accepts_runs_saved_before_new_settings_existed(tmp_path):
    from rsir.train.itsr import ITSRTrainConfig, _check_resume

    config = ITSRTrainConfig(fusion="gff-concat")
    older = {k: v for k, v in config.to_dict().items() if k not in ("finetune", "finetune_lr")}
    _check_resume({"train_config": older}, config, tmp_path)  # missing keys read as their defaults
    with pytest.raises(ValueError, match="finetune"):
        _check_resume({"train_config": older}, ITSRTrainConfig(fusion="gff-concat", finetune=1), tmp_path)


def test_weighted_info_nce_matches_the_naive_weighted_mean():
    img, txt = _emb(5, 3)
    logits = 6.0 * img @ txt.T
    w = torch.tensor([2.0, 1.0, 1.0, 2.0, 1.0])
    naive = 0.0
    for i in range(5):  # each row's two cross-entropies, weighted, over the weights' sum
        row = -logits[i, i] + torch.logsumexp(logits[i], 0)
        col = -logits[i, i] + torch.logsumexp(logits[:, i], 0)
        naive += w[i] * (row + col)
    naive = naive / (2 * w.sum())
    assert torch.allclose(info_nce(img, txt, 6.0, weights=w), naive, atol=1e-5)
    assert torch.allclose(info_nce(img, txt, 6.0, weights=torch.ones(5)), info_nce(img, txt, 6.0), atol=1e-6)
