"""Query / gallery splits for retrieval evaluation.

``loo`` (leave-one-out): every item queries all others; query = gallery = all items (the evaluator
drops the query itself from its own ranking). ``holdout:F``: a fraction F of items becomes the query
(test) side, the rest the gallery, which is also the training side for metric learning. Holdout is
stratified by each item's first label and is a pure function of (labels, spec, seed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_HOLDOUT = 0.2
SPLIT_HELP = "'loo' (leave-one-out) or 'holdout:F' with 0 < F < 1 the query fraction, e.g. holdout:0.2"


@dataclass(frozen=True)
class SplitSpec:
    kind: str  # "loo" | "holdout"
    fraction: float = 0.0  # query side of a holdout

    def __str__(self) -> str:
        return "loo" if self.kind == "loo" else f"holdout:{self.fraction:g}"


@dataclass(frozen=True)
class Split:
    query: np.ndarray  # int64 indexes into the archive items, sorted
    gallery: np.ndarray
    loo: bool
    stratified: bool = False

    @property
    def train(self) -> np.ndarray:
        """Items a metric head may learn from: the gallery side (all items under loo)."""
        return self.gallery


def parse_split(spec: str) -> SplitSpec:
    """Parse ``loo``, ``holdout`` (fraction 0.2) or ``holdout:F``; raises ValueError with usage."""
    text = str(spec).strip().lower()
    if text == "loo":
        return SplitSpec("loo")
    kind, sep, value = text.partition(":")
    if kind != "holdout":
        raise ValueError(f"unknown split {spec!r}: use {SPLIT_HELP}")
    if not sep:
        return SplitSpec("holdout", DEFAULT_HOLDOUT)
    try:
        fraction = float(value)
    except ValueError:
        raise ValueError(f"bad holdout fraction {value!r} in {spec!r}: use {SPLIT_HELP}") from None
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be strictly between 0 and 1, got {fraction:g}")
    return SplitSpec("holdout", fraction)


def _strata(labels: Sequence[Sequence[str]], n_query: int) -> np.ndarray | None:
    """First label per item, or None when stratification is impossible for this size."""
    keys = [lab[0] if len(lab) else "" for lab in labels]
    counts = Counter(keys)
    n_gallery = len(keys) - n_query
    if min(counts.values()) < 2 or len(counts) > min(n_query, n_gallery) or len(counts) == 1:
        return None
    return np.asarray(keys)


def make_split(labels: Sequence[Sequence[str]], spec: SplitSpec, seed: int) -> Split:
    """Split item indexes. Holdout falls back to unstratified when a class has fewer than two items."""
    n = len(labels)
    if n < 2:
        raise ValueError(f"need at least 2 items to split, got {n}")
    if spec.kind == "loo":
        everything = np.arange(n, dtype=np.int64)
        return Split(everything, everything.copy(), loo=True)
    if spec.kind != "holdout":
        raise ValueError(f"unknown split kind {spec.kind!r}")
    n_query = min(n - 1, max(1, round(spec.fraction * n)))
    strata = _strata(labels, n_query)
    from sklearn.model_selection import train_test_split

    gallery, query = train_test_split(
        np.arange(n, dtype=np.int64), test_size=n_query, random_state=seed, stratify=strata
    )
    return Split(np.sort(query), np.sort(gallery), loo=False, stratified=strata is not None)
