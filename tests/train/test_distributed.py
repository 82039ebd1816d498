"""The head training loops under DDP on 2 CPU processes (gloo), against single-process training."""

import numpy as np
import pytest
import torch

from rsir.cbir.evaluation import evaluate_vectors
from rsir.embed.features import apply_head
from rsir.embed.local import normalise
from rsir.train import distributed
from rsir.train.metric_head import TrainConfig, make_loss, pair_tuple, train_on_labels, train_on_pairs


def _toy(seed: int, n_per: int, classes: int = 6, dim: int = 32):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per)
    signal = np.zeros((classes, dim))
    signal[np.arange(classes), np.arange(classes)] = 1.0
    x = 2.0 * signal[y] + rng.normal(size=(len(y), dim))
    return normalise(x.astype(np.float32)), [(str(c),) for c in y]


def _pairs(labels, seed: int = 0):
    i, j = np.random.default_rng(seed).integers(0, len(labels), (2, 600))
    i, j = i[i != j], j[i != j]
    return i, j, np.array([labels[a] == labels[b] for a, b in zip(i, j, strict=True)], np.int8)


def _map10(x, labels) -> float:
    rows = np.arange(len(labels))
    return evaluate_vectors(x, labels, rows, rows, k=10, loo=True)["map@10"]


SMALL = TrainConfig(epochs=6, hidden=32, lr=3e-3, batch_size=256)  # 48 items: one batch per epoch
MANY = TrainConfig(epochs=12, hidden=64, lr=3e-3, batch_size=32, per_class=4)  # 180 items: ~6 batches
PAIRS = TrainConfig(loss="balanced", epochs=8, hidden=64, lr=3e-3, batch_size=64)


@pytest.fixture(autouse=True)
def one_thread():
    # The children use one thread each; the parent matches them (and on a shared 2-core machine, two
    # OpenMP threads spin-wait far longer than they compute).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs():
    """One launch of 2 gloo processes runs every scenario (process start-up dominates the cost)."""
    small, many = _toy(0, 8), _toy(1, 30)
    calls = [
        (train_on_labels, (*small, SMALL), {"progress": False}),
        (train_on_labels, (*many, MANY), {"progress": False, "history": []}),  # history: ranks all-reduce
        (train_on_pairs, (many[0], *_pairs(many[1]), PAIRS), {"progress": False}),
    ]
    return small, many, distributed.run_parallel(distributed.run_all, 2, calls)


def _same(a: torch.nn.Module, b: torch.nn.Module, atol: float) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=atol, rtol=0)


def test_ranks_end_with_identical_weights(runs) -> None:
    _, _, (rank0, rank1) = runs
    for h0, h1 in zip(rank0, rank1, strict=True):
        _same(h0, h1, atol=0)


def test_same_batch_on_every_rank_equals_single_process(runs) -> None:
    """One batch per epoch: padding gives both ranks that batch, and averaged identical gradients are the
    single-process gradient, so DDP must reproduce single-process training step for step."""
    small, _, ((ddp_head, *_), _) = runs
    single = train_on_labels(*small, SMALL, progress=False)
    _same(ddp_head, single, atol=1e-5)
    assert not torch.equal(single.branch[-1].weight, torch.zeros_like(single.branch[-1].weight))  # it trained


def test_data_parallel_training_learns(runs) -> None:
    _, (x, labels), ((_, labels_head, pairs_head), _) = runs
    before = _map10(x, labels)
    assert _map10(apply_head(x, labels_head), labels) > before + 0.1
    assert _map10(apply_head(x, pairs_head), labels) > before + 0.05


def test_loss_decreases_under_ddp_and_history_records_it(runs) -> None:
    _, (x, labels), ((_, labels_head, _), _) = runs
    xt = torch.from_numpy(x)
    relevant = torch.tensor([[a == b for b in labels] for a in labels])
    loss_fn = make_loss(MANY.loss)
    with torch.no_grad():
        start = loss_fn(xt, indices_tuple=pair_tuple(relevant)).item()  # the head starts as the identity
        end = loss_fn(labels_head(xt), indices_tuple=pair_tuple(relevant)).item()
    assert end < 0.9 * start
    history: list[float] = []
    train_on_labels(x, labels, MANY, progress=False, history=history)
    assert len(history) == MANY.epochs and history[-1] < history[0]


def test_shard_pads_so_every_rank_steps_equally(monkeypatch) -> None:
    batches = list(range(5))
    monkeypatch.setattr(distributed, "world", lambda: (0, 2))
    assert distributed.shard(batches) == [0, 2, 4]
    monkeypatch.setattr(distributed, "world", lambda: (1, 2))
    assert distributed.shard(batches) == [1, 3, 0]
    monkeypatch.setattr(distributed, "world", lambda: (0, 1))
    assert distributed.shard(batches) == batches
