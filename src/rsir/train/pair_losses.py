"""Losses for learning from answered pairs without wrecking the pretrained space (ANNEAL and `--pairs`).

A plain contrastive head on a few hundred answers (~95% of random pairs are dissimilar) collapses a good
pretrained space (UC Merced map@20 0.70 -> 0.42 after 100 answers). Three things prevent that:

- a *class-balanced* loss: mean loss of the similar pairs plus mean loss of the dissimilar ones;
- *evidence weighting*: each class's mean is weighted ``n / (n + evidence)`` by its number of answers,
  so 4 similar answers do not pull as hard as 400;
- a *geometry-preservation* term: the squared change of the pairwise cosine similarities of random
  (unlabelled) items, so the answers move the space only where they say something.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PairObjective:
    pos_margin: float = 1.0  # similar pairs are pulled until their cosine reaches this
    neg_margin: float = 0.5  # dissimilar pairs are pushed until their cosine falls below this
    preserve: float = 10.0  # weight of the geometry-preservation term (0 = off)
    evidence: float = 20.0  # a class's loss is weighted n / (n + evidence) by its answer count n
    n_anchors: int = 256  # random items per step for the preservation term


def evidence_weights(n_similar: int, n_dissimilar: int, evidence: float) -> tuple[float, float]:
    def weight(n: int) -> float:
        return n / (n + evidence) if n else 0.0

    return weight(n_similar), weight(n_dissimilar)


def pair_loss(cos, similar, pos_margin: float, neg_margin: float, weights: tuple[float, float] = (1.0, 1.0)):
    """Class-balanced contrastive loss on cosine similarities (either class may be absent):
    ``weights[0]`` x mean over similar pairs + ``weights[1]`` x mean over dissimilar ones."""
    import torch

    zero = cos.new_zeros(())
    pos = torch.relu(pos_margin - cos[similar])
    neg = torch.relu(cos[~similar] - neg_margin)
    return weights[0] * (pos.mean() if len(pos) else zero) + weights[1] * (neg.mean() if len(neg) else zero)


def preservation_loss(head, x):
    """Mean squared change of the pairwise cosine similarities of the rows of ``x`` (normalised)."""
    h = head(x)
    return ((h @ h.T - x @ x.T) ** 2).mean()


def objective_loss(head, x, pi, pj, similar, objective: PairObjective, weights, gen):
    """The full objective on one batch of pairs (indices into ``x``), anchors drawn with ``gen``."""
    import torch

    cos = (head(x[pi]) * head(x[pj])).sum(dim=1)
    loss = pair_loss(cos, similar, objective.pos_margin, objective.neg_margin, weights)
    if objective.preserve > 0:
        anchors = torch.randint(len(x), (min(objective.n_anchors, len(x)),), generator=gen).to(x.device)
        loss = loss + objective.preserve * preservation_loss(head, x[anchors])
    return loss
