"""The ANNEAL round loop over the campaign store: select -> ask -> answer -> train -> select ...

A round ``r`` is: its questions (pairs chosen by the strategy) stored as pending; answers arriving
(the simulated oracle in bulk, or people one by one through the app); then :func:`advance`: train
the head on every answer so far (warm-started from round ``r - 1``'s head), evaluate it (optional
callback), and in one transaction store its checkpoint and metrics together with round ``r + 1``'s
questions. Every step is idempotent and seeded by ``(seed, round)``, so a run killed anywhere resumes
from the store at the round it was in and asks no pair twice.

The loop knows strategies only through ``strategy.select(ctx, budget, rng)``; the initial round
uses ``settings.initial_strategy`` the same way. Its default is ``mixed`` (half closest-neighbour
pairs, half uniform pairs: both answers on any archive), not ``random``: 100 random pairs hold ~4
similar ones, too few to place MGUE's threshold or fit BCGUE's classifier, so their first round just
picked the closest pairs (98% similar, nothing learnt); nor ``neighbours`` (uniform over the pool),
whose share of similar pairs follows the pool's mix (~70% on UC Merced, ~12% on the 168-scene demo,
where 20 initial pairs were sometimes all dissimilar). Every strategy of a seed shares the initial pairs.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rsir.active.learner import PairTraining
from rsir.active.oracle import Oracle
from rsir.active.pool import Pairs
from rsir.active.store import ORACLE, Store

Evaluate = Callable[[Any], dict[str, float]]  # head (or None) -> metrics


@dataclass(frozen=True)
class CampaignSettings:
    """Everything that decides a campaign's course; stored with it and checked on resume."""

    strategy: str
    seed: int = 0
    initial: int = 100
    per_round: int = 250
    rounds: int = 8  # rounds after the initial one
    initial_strategy: str = "mixed"
    n_neighbours: int = 10
    n_random: int = 2_000  # a pool mostly of neighbours: ~70% similar pairs on UC Merced
    max_anchors: int | None = None
    train: PairTraining = field(default_factory=PairTraining)
    keep_checkpoints: int = 1
    extra: dict = field(default_factory=dict)  # archive, encoder, split: for whoever reopens it

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CampaignSettings:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        # a campaign stored before implied pairs (or the group objective) existed keeps its learner
        kwargs["train"] = PairTraining(**{"closure": 0.0, "groups": 0.0, "preserve": 10.0, **kwargs.get("train", {})})
        return cls(**kwargs)


def head_to_bytes(head) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(head.state_dict(), buf)
    return buf.getvalue()


def head_from_bytes(config: dict, state: bytes):
    import torch

    from rsir.models.heads import HeadConfig, ResidualHead

    head = ResidualHead(HeadConfig(**config))
    head.load_state_dict(torch.load(io.BytesIO(state), map_location="cpu", weights_only=True))
    return head.eval()


@contextmanager
def limit_threads(n: int | None) -> Iterator[None]:
    """Run torch and faiss on ``n`` threads (``None``: leave them alone), restoring them after.

    The per-round work is small (a few hundred pairs, a small head); on a busy machine OpenMP
    spin-waiting made two threads 10-30x slower than one.
    """
    if n is None:
        yield
        return
    import faiss
    import torch

    before_torch, before_faiss = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before_torch)
        faiss.omp_set_num_threads(before_faiss)


def _rng(seed: int, number: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, number, stream])


class CampaignLoop:
    """One campaign's loop: ``features`` are the frozen encoder features of the campaign's items
    (rows in the store's item order), ``evaluate`` scores a head for the round's metrics."""

    def __init__(
        self,
        store: Store,
        campaign_id: int,
        features: np.ndarray,
        evaluate: Evaluate | None = None,
        head_meta: dict | None = None,
        threads: int | None = 1,
    ) -> None:
        self.store, self.id = store, campaign_id
        row = store.campaign(campaign_id)
        self.settings = CampaignSettings.from_dict(row.settings)
        if len(features) != row.n_items:
            raise ValueError(f"campaign has {row.n_items} items, got features for {len(features)}")
        self.features = np.ascontiguousarray(features, np.float32)
        self.evaluate = evaluate
        self.head_meta = head_meta or {}
        self.threads = threads

    # --- state -----------------------------------------------------------------------------------

    @property
    def current_round(self) -> int:
        return self.store.campaign(self.id).current_round

    @property
    def done(self) -> bool:
        return self.store.campaign(self.id).status == "done"

    def head(self, before_round: int | None = None):
        """Newest stored head (trained before ``before_round`` if given); ``None`` = encoder space."""
        ck = self.store.latest_checkpoint(self.id)
        if ck is None or (before_round is not None and ck.round >= before_round):
            return None
        return head_from_bytes(ck.head_config, ck.state)

    def embeddings(self, head) -> np.ndarray:
        from rsir.embed.features import apply_head

        return apply_head(self.features, head)

    # --- steps -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Store the initial round's questions unless a round exists already."""
        if self.store.rounds(self.id):
            return
        s = self.settings
        pairs, info = self._select(s.initial_strategy, None, s.initial, 0)
        with self.store.session() as sess:
            self.store.add_round(sess, self.id, 0, pairs.i, pairs.j, info)

    def answer_pending(self, oracle: Oracle, annotator: str = ORACLE) -> int:
        """Let ``oracle`` answer every pending question of the current round (one transaction)."""
        qids, a, b = self.store.pending(self.id)
        if not len(qids):
            return 0
        return self.store.record_answers(qids, oracle.answer(Pairs(a, b)), annotator)

    def advance(self) -> dict:
        """Close the current (complete) round: train, evaluate, store the head and the next round's
        questions (or mark the campaign done). Returns the round's record."""
        if self.done:
            raise ValueError("campaign is finished")
        if not self.store.round_complete(self.id):
            raise ValueError("the current round still has unanswered questions")
        number, s = self.current_round, self.settings
        t0 = time.perf_counter()
        i, j, y = self.store.answered_pairs(self.id)
        diagnostics = self._diagnose(i, j, y, number)
        head = self._train(i, j, y, number)
        t_train = time.perf_counter() - t0
        metrics: dict[str, Any] = dict(self.evaluate(head)) if self.evaluate else {}
        answered = y[y >= 0]
        metrics |= {
            "n_similar": int((answered == 1).sum()),
            "n_skipped": int((y < 0).sum()),
            "train_s": round(t_train, 3),
            **diagnostics,
        }
        nxt = None
        if number < s.rounds:
            t1 = time.perf_counter()
            nxt = self._select(s.strategy, head, s.per_round, number + 1, Pairs(i, j), y)
            nxt[1]["select_s"] = round(time.perf_counter() - t1, 3)
        with self.store.session() as sess:
            self.store.finish_round(
                sess, self.id, number, len(answered), metrics, asdict(head.config), head_to_bytes(head),
                s.keep_checkpoints,
            )  # fmt: skip
            if nxt is not None:
                self.store.add_round(sess, self.id, number + 1, nxt[0].i, nxt[0].j, nxt[1])
        if nxt is None:
            self.store.set_status(self.id, "done")
        return {"round": number, "n_labelled": len(answered), **metrics}

    def run(self, oracle: Oracle, on_round: Callable[[dict], None] | None = None) -> list[dict]:
        """Simulate to the end: answer with ``oracle``, advance, repeat. Resumes where the store is."""
        self.start()
        while not self.done:
            self.answer_pending(oracle)
            record = self.advance()
            if on_round:
                on_round(record)
        return self.history()

    def history(self) -> list[dict]:
        """Trained rounds as records ``{round, n_labelled, **metrics}``."""
        return [
            {"round": r.number, "n_labelled": r.n_labelled, **(r.metrics or {})}
            for r in self.store.rounds(self.id)
            if r.trained_at is not None
        ]

    # --- internals -------------------------------------------------------------------------------

    def _diagnose(self, i: np.ndarray, j: np.ndarray, y: np.ndarray, number: int) -> dict[str, float | None]:
        """Where the round's information came from: the share of similar answers among its questions
        (``round_similar``) and the share the model that picked them already got right
        (``round_model_right``: the answer agrees with "similar iff distance <= threshold", the
        threshold fitted on the earlier answers as MGUE does; None for the initial round)."""
        from rsir.active.uncertainty import estimate_threshold, pair_distance

        n_q = next(r.n_questions for r in self.store.rounds(self.id) if r.number == number)
        split = len(y) - n_q  # answers come in round order: this round's are the last n_q
        now, before = slice(split, None), slice(0, split)
        answered = y[now] >= 0
        out: dict[str, float | None] = {
            "round_similar": round(float((y[now][answered] == 1).mean()), 4) if answered.any() else None,
            "round_model_right": None,
        }
        if number == 0 or not answered.any():
            return out
        emb = self.embeddings(self.head(before_round=number))
        d_before = pair_distance(emb, Pairs(i[before], j[before]))
        t = estimate_threshold(d_before, y[before])
        d_now = pair_distance(emb, Pairs(i[now], j[now]))[answered]
        out["round_model_right"] = round(float(((d_now <= t) == (y[now][answered] == 1)).mean()), 4)
        return out

    def _train(self, i: np.ndarray, j: np.ndarray, y: np.ndarray, number: int):
        from rsir.active.learner import train_head

        t = self.settings.train
        init = self.head(before_round=number) if t.warm_start else None
        seed = self.settings.seed * 1000 + number
        with limit_threads(self.threads):
            return train_head(self.features, i, j, y, t, seed=seed, init=init, head_meta=self.head_meta)

    def _select(
        self,
        name: str,
        head,
        budget: int,
        number: int,
        labelled: Pairs | None = None,
        labels: np.ndarray | None = None,
    ) -> tuple[Pairs, dict]:
        from rsir.active.strategies import SelectionContext, get_strategy

        s = self.settings
        ctx = SelectionContext(
            self.embeddings(head),
            labelled if labelled is not None else Pairs.empty(),
            labels if labels is not None else np.empty(0, np.int8),
            n_neighbours=s.n_neighbours,
            n_random=s.n_random,
            max_anchors=s.max_anchors,
            pool_seed=int(_rng(s.seed, number, 1).integers(2**31)),
        )
        with limit_threads(self.threads):
            pairs = get_strategy(name).select(ctx, budget, _rng(s.seed, number, 2))
        info = {k: v for k, v in ctx.info.items() if isinstance(v, int | float | str | bool)}
        return pairs, {"strategy": name, **info}


def create_or_resume_campaign(
    store: Store,
    name: str,
    settings: CampaignSettings,
    item_ids: list[str],
    item_paths: list[str] | None = None,
) -> int:
    """Campaign id for ``name`` (new, or the stored one if its settings and items agree)."""
    return store.create_or_resume_campaign(
        name, settings.strategy, settings.seed, settings.to_dict(), item_ids, item_paths
    )


def campaign_features(store: Store, campaign_id: int) -> np.ndarray:
    """Encoder features of the campaign's items (store order), from the archive and encoder named in
    its settings (``extra.archive``, ``extra.encoder``); embedded once and cached on disk."""
    from rsir.cbir.space import Space
    from rsir.data.archives import open_archive

    extra = store.campaign(campaign_id).settings.get("extra") or {}
    if "archive" not in extra:
        raise ValueError("the campaign's settings name no archive (extra.archive): pass its features instead")
    emb = Space.load(extra.get("encoder")).embed(open_archive(Path(extra["archive"])), progress=False)
    row = {item: k for k, item in enumerate(emb.ids)}
    ids = store.item_ids(campaign_id)
    missing = [i for i in ids if i not in row]
    if missing:
        raise ValueError(f"{len(missing)} campaign items are not in the archive any more, e.g. {missing[0]!r}")
    return emb.vectors[[row[i] for i in ids]]


def advance(
    store: Store, campaign_id: int, features: np.ndarray | None = None, evaluate: Evaluate | None = None
) -> dict:
    """For the annotation app: once :meth:`Store.round_complete`, train the head on every answer and
    store the next round's questions (or finish the campaign). ``features`` default to
    :func:`campaign_features`."""
    if features is None:
        features = campaign_features(store, campaign_id)
    return CampaignLoop(store, campaign_id, features, evaluate).advance()
