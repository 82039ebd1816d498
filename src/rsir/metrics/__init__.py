"""Retrieval metrics (map@k, p@k, R-precision, mAP, recall@k, mR); conventions in :mod:`.retrieval`."""

from rsir.metrics.retrieval import (
    LabelRelevance,
    mean_recall,
    ranking_metrics,
    recall_at_k,
    relevance_matrix,
    topk_metrics,
)

__all__ = [
    "LabelRelevance",
    "mean_recall",
    "ranking_metrics",
    "recall_at_k",
    "relevance_matrix",
    "topk_metrics",
]
