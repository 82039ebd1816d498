"""CBIR evaluation: queries ranked against a gallery in the chosen space, scored by retrieval metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsir.data.items import Archive


def labels_of(archive: Archive, ids: Sequence[str]) -> list[tuple[str, ...]]:
    by_id = {it.id: it.labels for it in archive.items}
    return [by_id[i] for i in ids]


def evaluate_vectors(
    vectors: np.ndarray,
    labels: Sequence[Sequence[str]],
    query: np.ndarray,
    gallery: np.ndarray,
    *,
    k: int = 20,
    loo: bool = False,
    jaccard: float | None = None,
) -> dict[str, float]:
    """Rank ``gallery`` rows for each ``query`` row by cosine similarity (leave-one-out drops the query itself)."""
    from rsir.metrics.retrieval import ranking_metrics, relevance_matrix

    sim = vectors[query] @ vectors[gallery].T
    relevant = relevance_matrix([labels[i] for i in query], [labels[i] for i in gallery], jaccard)
    exclude = query[:, None] == gallery[None, :] if loo else None
    return ranking_metrics(sim, relevant, k, exclude=exclude)


def split_of(labels: Sequence[Sequence[str]], split: str, seed: int):
    from rsir.data.splits import make_split, parse_split

    return make_split(labels, parse_split(split), seed)
