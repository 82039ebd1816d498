"""Pickers: turn per-candidate scores into a batch of picks (top-k, or one per k-means cluster).

Pickers see candidates only through their scores and, for clustering, a feature function called on
the preselected rows alone, so the full ``[M, F]`` feature matrix of a big pool is never built.
Ties in score are broken at random (seeded), which makes constant scores a uniform random choice.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Features = np.ndarray | Callable[[np.ndarray], np.ndarray]


def rank(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All indices by descending score, ties in random order."""
    scores = np.asarray(scores, np.float64)
    return np.lexsort((rng.random(len(scores)), -scores))


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``k`` highest scores (descending, ties at random) without a full sort."""
    scores = np.asarray(scores, np.float64)
    n = len(scores)
    k = max(0, min(k, n))
    if k == 0:
        return np.empty(0, np.int64)
    if k < n:
        # Keep every candidate tied with the k-th score so the random tie-break stays uniform.
        kth = np.partition(scores, n - k)[n - k]
        cand = np.flatnonzero(scores >= kth)
    else:
        cand = np.arange(n)
    return cand[rank(scores[cand], rng)[:k]].astype(np.int64)


def kmeans_pp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (D^2 sampling): spread-out initial centroids, ``[k, F]``.

    Random-point seeding, faiss' default, often drops two seeds in one tight group and never
    recovers, which costs a cluster exactly where diversity matters.
    """
    n = len(x)
    sq = np.einsum("nf,nf->n", x, x)
    chosen = [int(rng.integers(n))]
    d2 = np.maximum(sq + sq[chosen[0]] - 2 * np.einsum("nf,f->n", x, x[chosen[0]]), 0)
    for _ in range(1, k):
        cdf = np.cumsum(d2, dtype=np.float64)
        if cdf[-1] <= 0:  # every point sits on a centroid already: any point will do
            c = int(rng.integers(n))
        else:
            c = int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), n - 1))
        chosen.append(c)
        d2 = np.minimum(d2, np.maximum(sq + sq[c] - 2 * np.einsum("nf,f->n", x, x[c]), 0))
    return x[chosen]


def pca_reduce(x: np.ndarray, max_dim: int) -> np.ndarray:
    """Project rows on their top ``max_dim`` principal components (eigh of the F x F covariance)."""
    if x.shape[1] <= max_dim or len(x) <= max_dim:
        return x
    xc = x - x.mean(axis=0)
    _, vecs = np.linalg.eigh(xc.T @ xc)
    return np.ascontiguousarray(xc @ vecs[:, ::-1][:, :max_dim], dtype=np.float32)


def kmeans_labels(
    x: np.ndarray, n_clusters: int, rng: np.random.Generator, niter: int = 20, max_dim: int = 64
) -> np.ndarray:
    """Cluster id per row: k-means++ seeding, then faiss Lloyd iterations (several times faster
    than sklearn's KMeans here). Many clusters of wide features are first reduced to ``max_dim``
    principal components: 1,000 clusters of 10^4 512-d pair features drop from ~8 s to ~2 s."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, f = x.shape
    # PCA pays off only when Lloyd's saving beats its own cost (with a 10x margin for the F x F
    # eigendecomposition, which scales badly on busy cores): large budgets, not small ones.
    if n * n_clusters * niter * max(f - max_dim, 0) > 10 * (f**3 + n * f**2):
        x = pca_reduce(x, max_dim)
    km = faiss.Kmeans(
        x.shape[1],
        n_clusters,
        niter=niter,
        seed=int(rng.integers(2**31 - 1)),
        verbose=False,
        min_points_per_centroid=1,
    )
    km.train(x, init_centroids=kmeans_pp_init(x, n_clusters, rng))
    _, labels = km.index.search(x, 1)
    return labels[:, 0]


def cluster_picks(
    features: Features,
    scores: np.ndarray,
    n_picks: int,
    rng: np.random.Generator,
    preselect_factor: int = 10,
) -> np.ndarray:
    """ANNEAL diversity: the best-scoring candidate of each of ``n_picks`` clusters.

    Takes the top ``preselect_factor * n_picks`` candidates by score, k-means them into ``n_picks``
    clusters on ``features`` (an ``[M, F]`` array, or a function mapping preselected row indices to
    their features) and returns the highest-scoring member of each cluster, most uncertain first.
    Constant scores give a random member per cluster. With ``n_picks`` or fewer candidates all are
    returned; clusters k-means leaves empty are made up by the next best unpicked candidates.
    """
    scores = np.asarray(scores, np.float64)
    n_picks = min(n_picks, len(scores))
    if n_picks <= 0:
        return np.empty(0, np.int64)
    pre = top_k(scores, max(n_picks, preselect_factor * n_picks), rng)
    if len(pre) <= n_picks:
        return pre
    x = features(pre) if callable(features) else np.asarray(features)[pre]
    labels = kmeans_labels(x, n_picks, rng)
    # ``pre`` is already in descending score order with random ties: first member of each cluster.
    _, first = np.unique(labels, return_index=True)
    picked = np.sort(first)
    if len(picked) < n_picks:
        rest = np.setdiff1d(np.arange(len(pre)), picked, assume_unique=True)
        picked = np.sort(np.concatenate([picked, rest[: n_picks - len(picked)]]))
    return pre[picked]
