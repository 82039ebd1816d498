"""The one evaluator of ANNEAL rounds: ``map@k`` of test queries against the campaign's pool in a head's space.

The simulate driver, the annotation app and the Python API all score rounds with it, so a figure from a
simulated campaign and one from a served campaign mean the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rsir.models.heads import Head


@dataclass
class SplitEvaluator:
    """``vectors``: every embedded item (pool and test); ``query`` / ``gallery``: rows of the split."""

    vectors: np.ndarray
    labels: Sequence[Sequence[str]]
    query: np.ndarray
    gallery: np.ndarray
    k: int = 20

    def __call__(self, head: Head | None) -> dict[str, float]:
        """``{"map@k": value}`` with ``head`` applied (``None``: the encoder's own space)."""
        from rsir.cbir.evaluation import evaluate_vectors
        from rsir.embed.features import apply_head

        m = evaluate_vectors(apply_head(self.vectors, head), self.labels, self.query, self.gallery, k=self.k)
        return {f"map@{self.k}": float(m[f"map@{self.k}"])}

    evaluate = __call__  # the simulate driver's name for it
