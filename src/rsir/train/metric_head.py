"""Train a projection head on frozen features with pytorch-metric-learning losses.

Two sources of supervision share one loop: class labels (every in-batch pair whose label sets
overlap is a positive, the rest negatives -- single- and multi-label alike) and explicit labelled
pairs (similar / dissimilar answers, as ANNEAL collects them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rsir.models.heads import HeadConfig, ResidualHead
from rsir.train import distributed
from rsir.train.config import HeadTraining
from rsir.train.loop import FnObjective, fit
from rsir.train.pair_losses import PairObjective, evidence_weights, objective_loss


@dataclass(frozen=True, kw_only=True)
class TrainConfig(HeadTraining):
    """A metric head from class labels or answered pairs (``loss`` says which), and encoder fine-tuning; the
    optimisation fields (epochs, batch_size, lr, weight_decay, hidden) come from :class:`HeadTraining`."""

    loss: str = "multisimilarity"
    per_class: int = 8  # items per class in a label batch
    seed: int = 0


def _multisimilarity():
    from pytorch_metric_learning import losses

    return losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)


def _contrastive():
    from pytorch_metric_learning import distances, losses

    # Cosine similarity: positives are pulled towards 1, negatives pushed below 0.5.
    return losses.ContrastiveLoss(pos_margin=1.0, neg_margin=0.5, distance=distances.CosineSimilarity())


def _triplet():
    from pytorch_metric_learning import losses

    return losses.TripletMarginLoss(margin=0.1)


LOSSES: dict[str, Callable] = {
    "multisimilarity": _multisimilarity,
    "contrastive": _contrastive,
    "triplet": _triplet,
}


def make_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}")
    return LOSSES[name]()


def multi_hot(labels: Sequence[Sequence[str]]) -> np.ndarray:
    vocab = {lab: i for i, lab in enumerate(sorted({lab for labs in labels for lab in labs}))}
    out = np.zeros((len(labels), len(vocab)), dtype=np.float32)
    for row, labs in enumerate(labels):
        out[row, [vocab[lab] for lab in labs]] = 1.0
    return out


def pair_tuple(relevant: torch.Tensor, known: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """All in-batch positive and negative pairs of a boolean relevance matrix, as a PML indices tuple;
    with ``known`` (boolean, same shape) only the irrelevant pairs it marks are negatives (ANNEAL's groups:
    two groups are apart only where an answer says so)."""
    off_diag = ~torch.eye(len(relevant), dtype=torch.bool, device=relevant.device)
    a1, p = torch.nonzero(relevant & off_diag, as_tuple=True)
    negative = ~relevant & off_diag if known is None else ~relevant & known & off_diag
    a2, n = torch.nonzero(negative, as_tuple=True)
    return a1, p, a2, n


def class_batches(hot: np.ndarray, config: TrainConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of `per_class` items from each of several classes (single-label: M-per-class sampling)."""
    first = hot.argmax(1)
    by_class = [np.flatnonzero(first == c) for c in range(hot.shape[1])]
    by_class = [ix for ix in by_class if len(ix)]
    chunks = []
    for ix in by_class:
        perm = rng.permutation(ix)
        chunks += [perm[s : s + config.per_class] for s in range(0, len(perm), config.per_class)]
    order = rng.permutation(len(chunks))
    per_batch = max(2, config.batch_size // config.per_class)
    return [np.concatenate([chunks[o] for o in order[s : s + per_batch]]) for s in range(0, len(order), per_batch)]


def new_head(dim: int, config: TrainConfig, init: ResidualHead | None, meta: dict) -> ResidualHead:
    """A seeded residual head over ``dim`` features, or ``init``'s copy to continue from (shared with finetune)."""
    torch.manual_seed(config.seed)
    head = ResidualHead(HeadConfig(in_dim=dim, hidden=config.hidden, **meta))
    if init is not None:
        head.load_state_dict(init.state_dict())
    return head


def _optimiser(head: ResidualHead, config: TrainConfig) -> torch.optim.Optimizer:
    return config.adamw(head.parameters())


def _fit_head(objective: FnObjective, head: ResidualHead, config: TrainConfig, progress: bool, history) -> None:
    show = progress and distributed.is_main()
    state = fit(objective, _optimiser(head, config), epochs=config.epochs, progress=show, desc="training head")
    if history is not None:
        history.extend(state.losses)


def train_on_labels(
    features: np.ndarray,
    labels: Sequence[Sequence[str]],
    config: TrainConfig = TrainConfig(),
    *,
    head_meta: dict | None = None,
    progress: bool = True,
    history: list[float] | None = None,
) -> ResidualHead:
    """Metric learning from class labels (multi-label: items sharing any label are positives).

    Runs data-parallel when started in a process group (see :mod:`rsir.train.distributed`); ``history``
    receives each epoch's mean loss (averaged over ranks).
    """
    device = distributed.setup()
    hot = multi_hot(labels)
    x, hot_t = torch.from_numpy(features).to(device), torch.from_numpy(hot).to(device)
    head = new_head(features.shape[1], config, None, head_meta or {}).to(device)
    model, loss_fn = distributed.wrap(head), make_loss(config.loss)
    rng = np.random.default_rng(config.seed)

    def loss_of(batch: np.ndarray) -> torch.Tensor:
        b = torch.from_numpy(batch).to(device)
        relevant = (hot_t[b] @ hot_t[b].T) > 0
        return loss_fn(model(x[b]), indices_tuple=pair_tuple(relevant))

    head.train()
    _fit_head(FnObjective(lambda _: class_batches(hot, config, rng), loss_of), head, config, progress, history)
    return head.cpu().eval()


def train_on_pairs(
    features: np.ndarray,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    similar: np.ndarray,
    config: TrainConfig = TrainConfig(loss="balanced"),
    *,
    objective: PairObjective = PairObjective(),
    init: ResidualHead | None = None,
    head_meta: dict | None = None,
    progress: bool = True,
    history: list[float] | None = None,
) -> ResidualHead:
    """Metric learning from labelled pairs (1 similar, 0 dissimilar; other values are ignored).

    ``config.loss == "balanced"`` (the default) trains ANNEAL's objective (:mod:`rsir.train.pair_losses`:
    class-balanced, evidence-weighted, geometry-preserving); other names use a pytorch-metric-learning loss
    on the pairs alone. Data-parallel inside a process group, like :func:`train_on_labels`.
    """
    device = distributed.setup()
    keep = (similar == 0) | (similar == 1)
    pi, pj, y = (torch.from_numpy(np.asarray(a)[keep]).to(device) for a in (pair_i, pair_j, similar))
    x = torch.from_numpy(features).to(device)
    head = new_head(features.shape[1], config, init, head_meta or {}).to(device)
    model = distributed.wrap(head)
    step = _balanced_step(objective, y) if config.loss == "balanced" else _pml_step(make_loss(config.loss))
    gen = torch.Generator().manual_seed(config.seed)

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        b = batch.to(device)
        return step(model, x, pi[b], pj[b], y[b] == 1, gen)

    head.train()
    epoch_batches = lambda _: list(torch.randperm(len(y), generator=gen).split(config.batch_size))  # noqa: E731
    _fit_head(FnObjective(epoch_batches, loss_of), head, config, progress, history)
    return head.cpu().eval()


def _balanced_step(objective: PairObjective, y: torch.Tensor):
    n_similar = int((y == 1).sum())
    weights = evidence_weights(n_similar, len(y) - n_similar, objective.evidence)

    def step(model, x, pi, pj, is_sim, gen):
        return objective_loss(model, x, pi, pj, is_sim, objective, weights, gen)

    return step


def _pml_step(loss_fn):
    def step(model, x, pi, pj, is_sim, gen):
        m = len(pi)
        emb = model(torch.cat([x[pi], x[pj]]))
        left, right = torch.arange(m, device=x.device), torch.arange(m, 2 * m, device=x.device)
        return loss_fn(emb, indices_tuple=(left[is_sim], right[is_sim], left[~is_sim], right[~is_sim]))

    return step
