"""Public API, ANNEAL: simulate campaigns on a labelled archive; what a real campaign stands on.

    result = rsir.simulate(archive, "runs/anneal", strategies=["random", "anneal-mgue"], seeds=1)

Simulation runs the same round loop as a real campaign (:mod:`rsir.api_campaign`: ``rsir.open_campaign``,
`rsir anneal serve`): the campaign store, the strategies, the learner and the evaluator are shared, and
:func:`campaign_pool` sets up both (embedding, split, round evaluator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rsir.data.items import Archive

__all__ = ["CampaignPool", "RoundRecord", "SimulationResult", "campaign_pool", "simulate"]


@dataclass(frozen=True)
class RoundRecord:
    """One trained round: answers so far, ``map_at_k`` of its head (None without a test split); ``strategy`` as
    asked and ``resolved`` (what ``default`` selected); ``round_similar``: the share of similar answers among the
    round's pairs, ``round_model_right``: the share the previous head already got right (None for round 0)."""

    round: int
    n_labelled: int
    map_at_k: float | None = None
    n_similar: int | None = None
    strategy: str = ""
    seed: int = 0
    resolved: str = ""
    round_similar: float | None = None
    round_model_right: float | None = None

    @classmethod
    def from_row(cls, row: dict, k: int = 20, strategy: str = "", seed: int = 0) -> RoundRecord:
        value = row.get(f"map@{k}", row.get("map@20"))
        return cls(
            int(row["round"]), int(row["n_labelled"]), None if value is None else float(value),
            row.get("n_similar"), row.get("strategy", strategy), int(row.get("seed", seed)),
            row.get("resolved", row.get("strategy", strategy)), row.get("round_similar"), row.get("round_model_right"),
        )  # fmt: skip


@dataclass(frozen=True)
class SimulationResult:
    """Every round of every (strategy, seed); the off-the-shelf and all-labels references (mean ``map@k``)."""

    rounds: list[RoundRecord]
    off_the_shelf: float | None
    full_labels: float | None
    seconds: float
    out: Path
    report: dict = field(default_factory=dict, compare=False, repr=False)  # results.json, as the CLI prints it

    def curves(self) -> dict[str, dict[int, float]]:
        """``{strategy: {n_labelled: map@k mean over seeds}}``."""
        from rsir.active.simulate import mean_curves

        rows = [{"strategy": r.strategy, "round": r.round, "n_labelled": r.n_labelled, "m": r.map_at_k}
                for r in self.rounds]  # fmt: skip
        return mean_curves(rows, metric="m")


def simulate(
    archive: Archive,
    out: str | Path,
    *,
    strategies: Sequence[str] = ("random", "anneal-mgue"),
    db: str | None = None,
    progress: bool = False,
    **settings: Any,
) -> SimulationResult:
    """Simulated campaigns (answers from class labels) for every strategy x seed; ``settings``: the fields of
    :class:`rsir.active.simulate.SimulationConfig` (``seeds``, ``initial``, ``per_round``, ``rounds``, ``k``,
    ``train=PairTraining(steps=...)``...). Resumable, and writes results.csv/json and curve.png to ``out``."""
    from rsir.active.simulate import SimulationConfig
    from rsir.active.simulate import simulate as _simulate

    known = {f.name for f in fields(SimulationConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown simulation settings {unknown}; known: {sorted(known)}")
    config = SimulationConfig(strategies=tuple(strategies), **settings)
    result = _simulate(archive, Path(out), config, db=db, progress=progress)
    rounds = [RoundRecord.from_row(r, config.k) for r in result["rounds"]]
    refs = {key: (result.get(key) or {}).get("map@20") for key in ("off_the_shelf", "full_labels")}
    return SimulationResult(rounds, refs["off_the_shelf"], refs["full_labels"], result["seconds"], Path(out), result)


@dataclass(frozen=True)
class CampaignPool:
    """What a campaign stands on: every embedded item (``ids``, ``vectors``), the ``pool`` rows pairs are drawn
    from (the train part of ``split``, or all items), and the evaluator of each round's head (test queries
    against the pool, ``map@k``; None without a split). ``split`` is ``"none"`` when there is none."""

    ids: list[str]
    vectors: np.ndarray
    pool: np.ndarray
    evaluate: Any
    split: str
    encoder: str
    weights_hash: str | None


def campaign_pool(
    archive: Archive,
    *,
    split: str | None = "holdout:0.2",
    seed: int = 0,
    k: int = 20,
    encoder: str | None = None,
    runtime: str = "auto",
    embeddings: Any = None,
    progress: bool = False,
) -> CampaignPool:
    """Embed ``archive`` (or take ``embeddings`` whose ids match it) and split it for a campaign: what
    :func:`open_campaign` and the annotation app (`rsir anneal serve`) build their round loop on."""
    from rsir.active.evaluator import SplitEvaluator
    from rsir.cbir.evaluation import labels_of, split_of
    from rsir.cbir.space import Space

    weights_hash = None
    if embeddings is None:
        space = Space.load(encoder, runtime=runtime)
        embeddings = space.embed(archive, progress=progress)
        encoder, weights_hash = space.encoder.config.name, space.encoder.weights_hash
    labels = labels_of(archive, embeddings.ids)
    vectors = embeddings.vectors
    if split and split != "none" and archive.is_labelled:
        parts = split_of(labels, split, seed)
        pool, evaluate = parts.gallery, SplitEvaluator(vectors, labels, parts.query, parts.gallery, k)
    else:
        pool, evaluate, split = np.arange(len(embeddings.ids)), None, "none"
    return CampaignPool(list(embeddings.ids), vectors, pool, evaluate, split, str(encoder), weights_hash)
