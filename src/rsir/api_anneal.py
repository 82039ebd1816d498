"""Public API, ANNEAL: simulate campaigns on a labelled archive, or drive a real one from Python.

    result = rsir.simulate(archive, "runs/anneal", strategies=["random", "anneal-mgue"], seeds=1)
    campaign = rsir.open_campaign(archive, "campaign.db", "my-campaign")
    campaign.run(lambda a, b: a.labels == b.labels)   # your answer: True / False / None (skip)

Both run the same round loop as `rsir anneal simulate` and `rsir anneal serve` (the campaign store, the
strategies, the learner and the evaluator are shared), so a notebook campaign can later be served.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from rsir.data.items import Archive, Item

__all__ = ["Answer", "Campaign", "RoundRecord", "SimulationResult", "open_campaign", "simulate"]

Answer = Callable[[Item, Item], "bool | None"]  # similar? None = cannot tell (skipped)


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
    return SimulationResult(rounds, refs["off_the_shelf"], refs["full_labels"], result["seconds"], Path(out))


class _CallbackOracle:
    """An oracle that asks a Python callable, one pair at a time (a person in a notebook)."""

    def __init__(self, items: list[Item], answer: Answer) -> None:
        self.items, self.ask = items, answer

    def answer(self, pairs) -> np.ndarray:
        out = np.empty(len(pairs.i), np.int8)
        for n, (a, b) in enumerate(zip(pairs.i, pairs.j, strict=True)):
            said = self.ask(self.items[int(a)], self.items[int(b)])
            out[n] = -1 if said is None else int(bool(said))
        return out


class Campaign:
    """An ANNEAL campaign in a store (SQLite file or PostgreSQL URL), answered through a callback."""

    def __init__(self, loop, items: list[Item], annotator: str, k: int) -> None:
        self._loop, self.items, self.annotator, self.k = loop, items, annotator, k

    @property
    def done(self) -> bool:
        return self._loop.done

    @property
    def current_round(self) -> int:
        return self._loop.current_round

    def pending(self) -> list[tuple[Item, Item]]:
        """The current round's unanswered pairs."""
        self._loop.start()
        _, a, b = self._loop.store.pending(self._loop.id)
        return [(self.items[int(i)], self.items[int(j)]) for i, j in zip(a, b, strict=True)]

    def answer_round(self, answer: Answer) -> RoundRecord:
        """Ask ``answer`` about every pending pair of the round, then train the head and select the next round."""
        if self.done:
            raise ValueError("the campaign is finished")
        self._loop.start()
        self._loop.answer_pending(_CallbackOracle(self.items, answer), self.annotator)
        return RoundRecord.from_row(self._loop.advance(), self.k)

    def run(self, answer: Answer, rounds: int | None = None) -> list[RoundRecord]:
        """Answer rounds until the campaign is done (or ``rounds`` more rounds); resumable like the app."""
        n = 0
        while not self.done and (rounds is None or n < rounds):
            self.answer_round(answer)
            n += 1
        return self.history()

    def history(self) -> list[RoundRecord]:
        return [RoundRecord.from_row(r, self.k) for r in self._loop.history()]

    def head(self):
        """The newest trained head (``None`` before the first round is trained)."""
        return self._loop.head()

    def save_head(self, folder: str | Path) -> Path:
        """Write the newest head as a checkpoint folder that :func:`rsir.load_head` and `rsir index --head` load."""
        from rsir.models.heads import save_head

        head = self.head()
        if head is None:
            raise ValueError("no round has been trained yet")
        save_head(head, Path(folder), {"campaign": self._loop.store.campaign(self._loop.id).name})
        return Path(folder)

    def close(self) -> None:
        self._loop.store.dispose()


def open_campaign(
    archive: Archive,
    db: str | Path,
    name: str,
    *,
    strategy: str = "default",
    seed: int = 0,
    initial: int = 100,
    per_round: int = 100,
    rounds: int = 10,
    split: str | None = "holdout:0.2",
    encoder: str | None = None,
    steps: int | None = None,
    annotator: str = "notebook",
    k: int = 20,
) -> Campaign:
    """Create or resume campaign ``name``. With ``split`` (and a labelled archive) each round is scored on
    the test queries; the pool is the train part. Reopening with other settings raises CampaignMismatch."""
    from rsir.active.campaign import CampaignLoop, CampaignSettings, create_or_resume_campaign
    from rsir.active.evaluator import SplitEvaluator
    from rsir.active.learner import PairTraining
    from rsir.active.store import Store
    from rsir.active.strategies import get_strategy, resolve
    from rsir.cbir.evaluation import labels_of, split_of
    from rsir.cbir.space import Space

    for s in (strategy, "neighbours"):
        get_strategy(s)
    space = Space.load(encoder)
    emb = space.embed(archive, progress=False)
    meta = {"encoder": space.encoder.config.name, "weights_hash": space.encoder.weights_hash}
    by_id = {it.id: it for it in archive.items}
    labels = labels_of(archive, emb.ids)
    if split and archive.is_labelled:
        parts = split_of(labels, split, seed)
        pool, evaluate = parts.gallery, SplitEvaluator(emb.vectors, labels, parts.query, parts.gallery, k)
    else:
        pool, evaluate, split = np.arange(len(emb.ids)), None, "none"
    settings = CampaignSettings(
        strategy=resolve(strategy), seed=seed, initial=initial, per_round=per_round, rounds=rounds,
        train=PairTraining() if steps is None else PairTraining(steps=steps),
        extra={"archive": str(archive.root), "encoder": meta["encoder"], "split": split, "app": "rsir.api"},
    )  # fmt: skip
    store = Store(str(db))
    items = [by_id[emb.ids[r]] for r in pool]
    cid = create_or_resume_campaign(store, name, settings, [it.id for it in items], [str(it.path) for it in items])
    return Campaign(CampaignLoop(store, cid, emb.vectors[pool], evaluate, meta), items, annotator, k)
