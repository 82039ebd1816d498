import numpy as np
import torch

from rsir.cbir.evaluation import evaluate_vectors
from rsir.embed.features import apply_head
from rsir.embed.local import normalise
from rsir.train.metric_head import TrainConfig, pair_tuple, train_on_labels, train_on_pairs


def _toy(seed: int = 0, n_per: int = 30, classes: int = 6, dim: int = 32):
    """Classes that overlap in the raw space but separate along a few informative directions."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per)
    signal = np.zeros((classes, dim))
    signal[np.arange(classes), np.arange(classes)] = 1.0
    x = 2.0 * signal[y] + rng.normal(size=(len(y), dim))
    return normalise(x.astype(np.float32)), [(str(c),) for c in y]


def test_pair_tuple_matches_naive() -> None:
    rel = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)
    a1, p, a2, n = pair_tuple(rel)
    pos = {(i, j) for i in range(3) for j in range(3) if i != j and rel[i, j]}
    neg = {(i, j) for i in range(3) for j in range(3) if i != j and not rel[i, j]}
    assert set(zip(a1.tolist(), p.tolist(), strict=True)) == pos
    assert set(zip(a2.tolist(), n.tolist(), strict=True)) == neg
    known = torch.tensor([[1, 1, 1], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)  # ANNEAL's groups: (2, 0) unknown
    a1, p, a2, n = pair_tuple(rel, known)
    assert set(zip(a1.tolist(), p.tolist(), strict=True)) == pos
    assert set(zip(a2.tolist(), n.tolist(), strict=True)) == neg - {(2, 0)}


def test_label_training_improves_retrieval() -> None:
    x, labels = _toy()
    rows = np.arange(len(labels))
    before = evaluate_vectors(x, labels, rows, rows, k=10, loo=True)["map@10"]
    head = train_on_labels(x, labels, TrainConfig(epochs=50, hidden=64, lr=3e-3), progress=False)
    after = evaluate_vectors(apply_head(x, head), labels, rows, rows, k=10, loo=True)["map@10"]
    assert after > before + 0.1


def test_pair_training_improves_retrieval() -> None:
    x, labels = _toy(1)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(labels), (2, 1000))
    keep = i != j
    i, j = i[keep], j[keep]
    y = np.array([labels[a] == labels[b] for a, b in zip(i, j, strict=True)], np.int8)
    rows = np.arange(len(labels))
    before = evaluate_vectors(x, labels, rows, rows, k=10, loo=True)["map@10"]
    head = train_on_pairs(x, i, j, y, TrainConfig(loss="contrastive", epochs=30, hidden=64, lr=3e-3), progress=False)
    after = evaluate_vectors(apply_head(x, head), labels, rows, rows, k=10, loo=True)["map@10"]
    assert after > before + 0.1
