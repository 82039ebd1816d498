"""Oracles answer "are these two images similar?" for pairs: a simulated one from class labels.

``LabelOracle`` encodes each item's label set as a row of uint64 bit words (multi-hot, 64 classes
a word), so every rule is a handful of vectorised bit operations over the pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rsir.active.pool import Pairs

SIMILAR, DISSIMILAR, SKIPPED = np.int8(1), np.int8(0), np.int8(-1)


class Oracle(Protocol):
    def answer(self, pairs: Pairs) -> np.ndarray:
        """int8 per pair: 1 similar, 0 dissimilar, -1 skipped (cannot tell)."""
        ...


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per row of a ``[M, W]`` uint64 array."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(len(words), -1)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1, dtype=np.int64)


def parse_rule(rule: str) -> tuple[str, float]:
    """``share-any`` | ``same-set`` | ``jaccard:<t>`` (similar iff |A & B| / |A | B| >= t)."""
    if rule in ("share-any", "same-set"):
        return rule, 0.0
    if rule.startswith("jaccard:"):
        t = float(rule.split(":", 1)[1])
        if not 0.0 < t <= 1.0:
            raise ValueError(f"jaccard threshold must be in (0, 1], got {t}")
        return "jaccard", t
    raise ValueError(f"unknown rule {rule!r}; use share-any, same-set or jaccard:<t>")


class LabelOracle:
    """Simulated annotator: similarity from the items' class labels.

    Pairs involving an item with no labels are answered -1 (skipped), as a person would skip them.
    """

    def __init__(self, labels: Sequence[Sequence[str]], rule: str = "share-any") -> None:
        self.rule, self.threshold = parse_rule(rule)
        self.classes = sorted({c for item in labels for c in item})
        col = {c: k for k, c in enumerate(self.classes)}
        n_words = max(1, -(-len(self.classes) // 64))
        self.bits = np.zeros((len(labels), n_words), np.uint64)
        rows = [r for r, item in enumerate(labels) for _ in item]
        cols = np.array([col[c] for item in labels for c in item], np.int64)
        if len(cols):
            words, shifts = cols // 64, (cols % 64).astype(np.uint64)
            np.bitwise_or.at(self.bits, (np.asarray(rows), words), np.uint64(1) << shifts)
        self.n_labels = _popcount(self.bits)

    def answer(self, pairs: Pairs) -> np.ndarray:
        a, b = self.bits[pairs.i], self.bits[pairs.j]
        if self.rule == "share-any":
            similar = (a & b).any(axis=1)
        elif self.rule == "same-set":
            similar = (a == b).all(axis=1)
        else:
            inter, union = _popcount(a & b), _popcount(a | b)
            similar = inter >= self.threshold * np.maximum(union, 1)
        out = np.where(similar, SIMILAR, DISSIMILAR).astype(np.int8)
        unknown = (self.n_labels[pairs.i] == 0) | (self.n_labels[pairs.j] == 0)
        out[unknown] = SKIPPED
        return out
