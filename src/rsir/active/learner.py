"""The head ANNEAL trains each round: a residual head on frozen features, from answered pairs.

The objective (class-balanced, evidence-weighted pair loss plus geometry preservation, which keep a
few hundred answers from wrecking the pretrained space) lives in :mod:`rsir.train.pair_losses`;
`rsir train cbir --pairs` trains with the same objective.

Each round warm-starts from the previous round's head and takes a fixed number of optimiser steps
over all answers so far, so a round costs the same however many answers there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsir.train.config import HeadTraining
from rsir.train.pair_losses import PairObjective, evidence_weights, objective_loss


@dataclass(frozen=True, kw_only=True)
class PairTraining(PairObjective, HeadTraining):
    """Settings of the per-round head training: the objective's (margins, preservation, evidence) plus the
    loop's (:class:`HeadTraining`, with ANNEAL's own defaults below). Defaults tuned on UC Merced, see
    bench_anneal.py; campaigns store them as one flat dict."""

    steps: int = 40  # optimiser steps per round; 0 = ``epochs`` passes over the answers instead
    epochs: int = 20
    lr: float = 3e-4
    hidden: int = 256
    warm_start: bool = True


def _batches(n: int, config: PairTraining, gen) -> list:
    """Index batches for one round: ``steps`` batches (or ``epochs`` passes when steps = 0), cut
    from back-to-back permutations of the answers so every answer is seen equally often."""
    import torch

    size = min(config.batch_size, n)
    total = config.steps or config.epochs * -(-n // size)
    if total <= 0:
        return []
    stream = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-total * size // n))])
    return list(stream[: total * size].view(total, size))


def train_head(
    features: np.ndarray,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    labels: np.ndarray,
    config: PairTraining = PairTraining(),
    *,
    seed: int = 0,
    init=None,
    head_meta: dict | None = None,
):
    """Train (or continue training ``init``) a :class:`ResidualHead` on answered pairs.

    ``features``: float32 ``[N, D]`` L2-normalised encoder features of the campaign's items;
    ``labels``: 1 similar, 0 dissimilar, anything else ignored (skips). With no usable answer the
    head is returned unchanged (identity for a new head).
    """
    import torch

    from rsir.models.heads import HeadConfig, ResidualHead
    from rsir.train.loop import FnObjective, fit

    torch.manual_seed(seed)
    head = ResidualHead(HeadConfig(in_dim=features.shape[1], hidden=config.hidden, **(head_meta or {})))
    if init is not None:
        head.load_state_dict(init.state_dict())
    y = np.asarray(labels)
    keep = (y == 0) | (y == 1)
    if not keep.any():
        return head.eval()
    x = torch.from_numpy(np.ascontiguousarray(features, np.float32))
    pi, pj = (torch.from_numpy(np.asarray(a, np.int64)[keep]) for a in (pair_i, pair_j))
    sim = torch.from_numpy(y[keep] == 1)
    gen = torch.Generator().manual_seed(seed)
    opt = config.adamw(head.parameters())
    n_pos = int(sim.sum())
    weights = evidence_weights(n_pos, len(sim) - n_pos, config.evidence)
    head.train()
    batches = _batches(len(sim), config, gen)  # one "epoch" of exactly the round's steps
    objective = FnObjective(
        lambda _: batches, lambda b: objective_loss(head, x, pi[b], pj[b], sim[b], config, weights, gen)
    )
    fit(objective, opt, epochs=1, shard=False)
    return head.eval()
