"""rsir: remote-sensing image retrieval (CBIR + DML, ANNEAL active learning, text-ITSR).

The public API (:mod:`rsir.api`) is re-exported here lazily: ``import rsir`` loads nothing heavy, and the
first use of e.g. ``rsir.open_archive`` imports it. See docs/python.md.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Archive", "Campaign", "CampaignPool", "CaptionHit", "Embeddings", "Hit", "ITSRTrainConfig", "Index",
    "IndexReport", "Item", "ItsrModel", "ItsrScores", "ItsrTrainResult", "Metrics", "PairHit", "PairTraining",
    "RoundRecord", "SearchPage", "SimulationResult", "Space", "TrainConfig", "TrainResult", "append_to_index",
    "build_index", "campaign_pool", "demo_archive", "embed_archive", "evaluate", "evaluate_itsr", "evaluate_text",
    "invite_annotator", "load_head", "load_space", "make_change_set", "open_archive", "open_campaign",
    "open_caption_set", "open_change_set", "open_index", "open_itsr", "remove_from_index", "run_demo", "simulate",
    "train_head", "train_itsr", "train_text", "__version__",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rsir import api

        return getattr(api, name)
    raise AttributeError(f"module 'rsir' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
