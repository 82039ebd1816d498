"""The head ANNEAL trains each round: a residual head on frozen features, from answered pairs.

The objective (class-balanced, evidence-weighted pair loss plus geometry preservation, which keep a
few hundred answers from wrecking the pretrained space) lives in :mod:`rsir.train.pair_losses`;
`rsir train cbir --pairs` trains with the same objective.

Each round warm-starts from the previous round's head and takes a fixed number of optimiser steps
over all answers so far, so a round costs the same however many answers there are. Each step also
sees a batch of the pairs the answers imply by transitivity (``closure``, weighted below direct answers) and,
with ``groups`` > 0, a class batch of the groups the answers join, under the all-labels reference head's loss.
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
    # the pull towards the pretrained geometry (PairObjective's default 10 for `rsir train cbir --pairs`):
    # 3 lets the answers move the space further; with `closure-mgue-reach` it is what beats `neighbours`
    # by >= 3 points on UC Merced, SIRI-WHU and the Sentinel-2 tiles (docs/benchmarks.md, issue 17)
    preserve: float = 3.0
    # weight of the pairs the answers imply by transitivity (rsir.active.closure) against direct answers;
    # 0 = train on direct answers only. One batch of implied pairs (half similar) joins every step. Below 1:
    # people err, and "similar" is not transitive for every archive (multi-label share-any). docs/benchmarks.md
    closure: float = 0.5
    # weight of the group objective: the items the answers join into groups (closure components), trained
    # with the all-labels reference head's loss (multi-similarity over class batches, rsir.train.metric_head)
    # with the groups as classes, negatives only between groups an answer declared apart; 0 = off
    groups: float = 0.0


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


def _implied_batches(closure, n_answers: int, config: PairTraining, n_steps: int, seed: int):
    """``(i, j, similar, weights)`` tensors of ``n_steps`` batches of the pairs ``closure`` implies, or None
    (closure off or nothing implied beyond the answers)."""
    if config.closure <= 0 or n_steps == 0:
        return None
    import torch

    from rsir.active.closure import implied_pairs

    size = min(config.batch_size, max(n_answers, 2))
    pairs, labels = implied_pairs(closure, n_steps * size, np.random.default_rng([seed, 7]))
    if not len(pairs):
        return None
    n_pos = int(closure.sizes @ (closure.sizes - 1) // 2)
    ca, cb = closure.apart >> 32, closure.apart & ((1 << 32) - 1)
    n_neg = int((closure.sizes[ca] * closure.sizes[cb]).sum())
    to = [torch.from_numpy(np.ascontiguousarray(a)) for a in (pairs.i, pairs.j)]
    return (*to, torch.from_numpy(labels == 1), evidence_weights(n_pos, n_neg, config.evidence), size)


def _group_batches(closure, n_steps: int, config: PairTraining, seed: int):
    """``n_steps`` ``(items, relevant, known)`` batches for the group objective, or None (no two groups
    apart). Items come from groups with a member count >= 2 or an "apart" answer, a few per group, as
    the reference head's class batches; ``relevant``: same group, ``known``: same group or groups apart."""
    import torch

    from rsir.train.metric_head import TrainConfig, class_batches

    if not len(closure.apart) or n_steps == 0:
        return None
    comp, apart = closure.component, closure.apart
    linked = np.zeros(closure.n_components, bool)
    linked[apart >> 32] = linked[apart & ((1 << 32) - 1)] = True
    useful = np.flatnonzero(linked | (closure.sizes >= 2))
    items = np.flatnonzero(np.isin(comp, useful))
    hot = np.zeros((len(items), len(useful)), np.float32)
    hot[np.arange(len(items)), np.searchsorted(useful, comp[items])] = 1
    rng, sampling = np.random.default_rng([seed, 11]), TrainConfig(batch_size=config.batch_size)
    out: list = []
    while len(out) < n_steps:
        out += [items[b] for b in class_batches(hot, sampling, rng) if len(b) > 1]
    batches = []
    for b in out[:n_steps]:
        c = comp[b]
        lo, hi = np.minimum.outer(c, c), np.maximum.outer(c, c)
        same = c[:, None] == c[None, :]
        known = same | np.isin((lo << 32) | hi, apart)
        batches.append(tuple(torch.from_numpy(a) for a in (b, same, known)))
    return batches


def _group_loss(head, x, batch, loss_fn):
    from rsir.train.metric_head import pair_tuple

    items, relevant, known = batch
    return loss_fn(head(x[items]), indices_tuple=pair_tuple(relevant, known))


def _implied_loss(head, x, implied, step: int, config: PairTraining):
    from rsir.train.pair_losses import pair_loss

    ii, jj, sim, weights, size = implied
    s = slice((step * size) % len(ii), (step * size) % len(ii) + size)
    cos = (head(x[ii[s]]) * head(x[jj[s]])).sum(dim=1)
    return pair_loss(cos, sim[s], config.pos_margin, config.neg_margin, weights)


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
    closure = None
    if config.closure > 0 or config.groups > 0:
        from rsir.active.closure import closure_of

        closure = closure_of(len(features), pair_i, pair_j, y)
    implied = _implied_batches(closure, len(y), config, len(batches), seed) if closure is not None else None
    groups = _group_batches(closure, len(batches), config, seed) if config.groups > 0 else None
    if groups is not None:
        from rsir.train.metric_head import make_loss

        group_loss_fn = make_loss("multisimilarity")

    def loss(step_batch):
        step, b = step_batch
        total = objective_loss(head, x, pi[b], pj[b], sim[b], config, weights, gen)
        if implied is not None:
            total = total + config.closure * _implied_loss(head, x, implied, step, config)
        if groups is not None:
            total = total + config.groups * _group_loss(head, x, groups[step], group_loss_fn)
        return total

    objective = FnObjective(lambda _: list(enumerate(batches)), loss)
    fit(objective, opt, epochs=1, shard=False)
    return head.eval()
