"""Uncertainty of unlabelled pairs: MGUE (metric-space threshold) and BCGUE (pair classifier).

Both are split into a *fit* step computed from labelled pairs (a threshold, a classifier) and a pure
*score* function where higher means more uncertain. Everything that touches pair features works in
chunks, so scoring millions of pairs never holds an ``[M, 2D]`` matrix.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rsir.active.pool import Pairs

# Rows per step: the [chunk, D] temporaries stay in L2, and matrix-vector products this small never
# wake BLAS threads (which, on busy 2-core machines, made 4k-row chunks up to 10x slower).
CHUNK = 1024


def _chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def pair_features(emb: np.ndarray, pairs: Pairs) -> np.ndarray:
    """Symmetric pair features ``concat(|a - b|, a * b)``, float32 ``[M, 2D]``."""
    a, b = emb[pairs.i], emb[pairs.j]
    return np.concatenate([np.abs(a - b), a * b], axis=1).astype(np.float32, copy=False)


def pair_distance(emb: np.ndarray, pairs: Pairs, chunk: int = CHUNK) -> np.ndarray:
    """Cosine distance ``1 - a.b`` per pair (embeddings L2-normalised), float32 ``[M]``."""
    out = np.empty(len(pairs), np.float32)
    for s in _chunks(len(pairs), chunk):
        a, b = emb[pairs.i[s]], emb[pairs.j[s]]
        out[s] = 1.0 - np.einsum("md,md->m", a, b)
    return out


def _labelled(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d, y = np.asarray(distances, np.float64), np.asarray(labels)
    if d.shape != y.shape:
        raise ValueError(f"distances {d.shape} and labels {y.shape} differ")
    return d[y == 1], d[y == 0]


def balanced_accuracy_curve(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate thresholds (midpoints between distinct labelled distances) and the balanced
    accuracy of the rule "similar iff d <= t" at each; labels -1 are ignored."""
    sim, dis = _labelled(distances, labels)
    values = np.unique(np.concatenate([sim, dis]))
    if len(values) < 2 or not len(sim) or not len(dis):
        return np.empty(0), np.empty(0)
    cuts = (values[:-1] + values[1:]) / 2
    tpr = np.searchsorted(np.sort(sim), cuts, side="right") / len(sim)
    tnr = 1.0 - np.searchsorted(np.sort(dis), cuts, side="right") / len(dis)
    return cuts, (tpr + tnr) / 2


def estimate_threshold(
    distances: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray | None = None,
    fallback_quantile: float = 0.5,
) -> float:
    """Distance threshold between labelled similar (1) and dissimilar (0) pairs.

    With both classes: the threshold maximising balanced accuracy of "similar iff d <= t" over the
    midpoints between consecutive distinct distances (so a clean gap gives its middle); among equal
    optima the median one is taken. With one class or none: the ``fallback_quantile`` of
    ``reference`` distances (the unlabelled pool, else ``distances``, else 1.0 = orthogonal),
    clipped to lie above every labelled similar distance and below every dissimilar one.
    """
    cuts, bacc = balanced_accuracy_curve(distances, labels)
    if len(cuts) and bacc.max() > 0.5:
        best = np.flatnonzero(bacc == bacc.max())
        return float(cuts[best[len(best) // 2]])
    sim, dis = _labelled(distances, labels)
    ref = reference if reference is not None and len(reference) else np.asarray(distances)
    t = float(np.quantile(ref, fallback_quantile)) if len(ref) else 1.0
    if len(sim):
        t = max(t, float(sim.max()))
    if len(dis):
        t = min(t, float(dis.min()))
    return t


def mgue_scores(distances: np.ndarray, threshold: float) -> np.ndarray:
    """MGUE uncertainty ``-|d - t|``: pairs closest to the similar/dissimilar threshold first."""
    return -np.abs(np.asarray(distances, np.float32) - np.float32(threshold))


def bcgue_scores(proba: np.ndarray) -> np.ndarray:
    """BCGUE uncertainty ``1 - |2p - 1|`` of P(similar): 1 at p = 0.5, 0 when sure."""
    return 1.0 - np.abs(2.0 * np.asarray(proba, np.float32) - 1.0)


class PairClassifier:
    """Class-balanced logistic regression on standardised symmetric pair features.

    ``fit`` needs both classes; ``fitted`` tells whether it succeeded (callers fall back otherwise).
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> None:
        self.C, self.max_iter, self.seed = C, max_iter, seed
        self.model = None

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def fit(self, emb: np.ndarray, pairs: Pairs, labels: np.ndarray) -> PairClassifier:
        y = np.asarray(labels)
        keep = y >= 0
        if len(np.unique(y[keep])) < 2:
            self.model = None
            return self
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter, random_state=self.seed),
        )
        model.fit(pair_features(emb, pairs.take(keep)), y[keep].astype(np.int64))
        self.model = model
        return self

    def predict_proba(self, emb: np.ndarray, pairs: Pairs, chunk: int = CHUNK) -> np.ndarray:
        """P(similar) per pair, float32 ``[M]``, computed chunk by chunk."""
        if self.model is None:
            raise RuntimeError("PairClassifier is not fitted (needs labelled pairs of both classes)")
        scaler, logreg = self.model[0], self.model[-1]
        # Fold the scaler into the weights: one dot product per pair. classes_ is sorted, so [0, 1].
        w = (logreg.coef_[0] / scaler.scale_).astype(np.float32)
        b0 = np.float32(logreg.intercept_[0] - np.dot(scaler.mean_ / scaler.scale_, logreg.coef_[0]))
        emb = np.asarray(emb, np.float32)
        d = emb.shape[1]
        w_diff, w_prod = w[:d], w[d:]
        out = np.empty(len(pairs), np.float32)
        for s in _chunks(len(pairs), chunk):
            # Same as pair_features(...) @ w without building the [chunk, 2D] concatenation.
            a, b = emb[pairs.i[s]], emb[pairs.j[s]]
            diff = a - b
            np.abs(diff, out=diff)
            np.multiply(a, b, out=a)
            z = np.einsum("md,d->m", diff, w_diff) + np.einsum("md,d->m", a, w_prod) + b0
            out[s] = 1.0 / (1.0 + np.exp(-z))
        return out
