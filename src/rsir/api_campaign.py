"""Public API, one ANNEAL campaign: open it, answer its pairs, train its rounds, read its progress.

    campaign = rsir.open_campaign(archive, "campaign.db", "my-campaign")
    campaign.run(lambda a, b: a.labels == b.labels)      # a callback answers every pair, round after round

    q = campaign.next_question("alice")                  # or one pair at a time, as the web app does
    campaign.answer("alice", q.id, 1)                    # 1 similar, 0 dissimilar, -1 skip
    if campaign.due() == "train":
        campaign.advance()                               # train on every answer, select the next round

A notebook and `rsir anneal serve` open and drive a campaign through this one object: the app adds the HTTP
routes, a background thread for :meth:`Campaign.advance` and a lock against answers to a closing round. So a
campaign begun in a notebook can be served later, and the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rsir.api_anneal import RoundRecord, campaign_pool
from rsir.api_campaign_types import (
    ANNOTATOR_NAME_MAX,
    ANNOTATOR_NAME_PATTERN,
    DEFAULTS,
    NO_SPLIT,
    AnnotatorRound,
    AnswerResult,
    CampaignMismatch,
    CampaignOptions,
    CampaignStats,
    Closed,
    CurvePoint,
    Progress,
    Question,
    Undone,
    annotator_key,
    check_annotator,
)
from rsir.data.items import Archive, Item

__all__ = [
    "ANNOTATOR_NAME_MAX", "ANNOTATOR_NAME_PATTERN", "Answer", "AnswerResult", "AnnotatorRound", "Campaign",
    "CampaignMismatch", "CampaignOptions", "CampaignStats", "Closed", "CurvePoint", "Progress", "Question", "Undone",
    "annotator_key", "check_annotator", "invite_annotator", "open_campaign",
]  # fmt: skip

Answer = Callable[[Item, Item], "bool | None"]  # similar? None = cannot tell (skipped)


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
    """An ANNEAL campaign in a store (SQLite file or PostgreSQL URL): its pairs, answers and rounds.

    Every call is one short transaction on the store, so several annotators (threads, processes) may answer
    at once; :meth:`advance` trains and selects in one transaction, once a round is fully answered.
    """

    def __init__(self, loop, items: list[Item], root: Path, annotator: str = "notebook", k: int = 20,
                 claim_seconds: float = 300) -> None:  # fmt: skip
        self._loop, self.items, self.root, self.annotator, self.k = loop, items, Path(root), annotator, k
        self.store = loop.store  # the campaign database (rsir.active.store.Store), for inspection
        self.id: int = loop.id
        self.settings = loop.settings
        self.name: str = self.store.campaign(self.id).name
        self.claim_seconds = claim_seconds
        self._baseline: dict[str, float] | None = None

    # --- state ---------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._loop.done

    @property
    def current_round(self) -> int:
        return self._loop.current_round

    @property
    def evaluated(self) -> bool:
        """Each round's head is scored on test queries (the campaign has a split)."""
        return self._loop.evaluate is not None

    @property
    def baseline(self) -> dict[str, float]:
        """The metrics of the encoder's own space (no training); empty without a split."""
        if self._baseline is None:
            self._baseline = dict(self._loop.evaluate(None)) if self.evaluated else {}
        return self._baseline

    def due(self) -> str:
        """What the campaign waits for: ``"select"`` (its first round), ``"train"`` (a fully answered round:
        :meth:`advance`), or ``""`` (answers, or nothing when done)."""
        if self.done:
            return ""
        if not self.store.rounds(self.id):
            return "select"
        return "train" if self.round_complete() else ""

    def round_complete(self) -> bool:
        return self.store.round_complete(self.id)

    def progress(self, annotator: str | None = None) -> Progress:
        counts = self.store.round_progress(self.id, annotator)
        return Progress(rounds_total=self.settings.rounds + 1, **counts)

    def history(self) -> list[RoundRecord]:
        """The trained rounds, oldest first."""
        return [RoundRecord.from_row(r, self.k) for r in self._loop.history()]

    def curve(self, metric: str = "map@20") -> list[CurvePoint]:
        """``metric`` of each trained round's head against the pairs answered by then."""
        return [CurvePoint(r.number, r.n_labelled, (r.metrics or {}).get(metric))
                for r in self.store.rounds(self.id) if r.trained_at is not None]  # fmt: skip

    def curve_svg(self, metric: str = "map@20") -> str:
        """:meth:`curve` with the baseline as a standalone SVG (matplotlib, like the simulate curves)."""
        from rsir.active.plots import curve_svg

        points = [{"round": p.round, "n_labelled": p.n_labelled, metric: p.value} for p in self.curve(metric)]
        return curve_svg(points, self.baseline.get(metric), metric)

    def stats(self, metric: str = "map@20") -> CampaignStats:
        row, s = self.store.campaign(self.id), self.settings
        return CampaignStats(
            campaign=self.name, strategy=s.strategy, status=row.status, current_round=row.current_round,
            rounds_total=s.rounds + 1, per_round=s.per_round, metric=metric if self.evaluated else None,
            baseline=self.baseline.get(metric), curve=self.curve(metric),
            answers=[AnnotatorRound(**r) for r in self.store.answers_by_round(self.id)],
        )  # fmt: skip

    def item_path(self, idx: int) -> str:
        """Item ``idx``'s stored path (relative to :attr:`root`); KeyError if the campaign has no such item."""
        return self.store.item_path(self.id, idx)

    # --- one pair at a time (the web app, or a person in a notebook) --------------------------------

    def next_question(self, annotator: str) -> Question | None:
        """The annotator's pair to answer: the one they hold, else a free one claimed for ``claim_seconds``."""
        check_annotator(annotator)
        return self.store.next_pending_question(self.id, annotator, self.claim_seconds)

    def answer(self, annotator: str, question_id: int, label: int) -> AnswerResult:
        """Store ``label`` (1 similar, 0 dissimilar, -1 skip) for a pair; answering twice stores it once, and
        the first annotator's answer wins. Raises KeyError (no such question here), PermissionError (another
        annotator holds the pair now) and :class:`Closed` (its round is closed)."""
        check_annotator(annotator)
        if label not in (1, 0, -1):
            raise ValueError(f"label {label!r}: 1 similar, 0 dissimilar or -1 skip")
        q = self.store.question_state(self.id, question_id)
        if q is None:
            raise KeyError(f"no question {question_id} in this campaign")
        if q.held_by_other(annotator):  # the caller may never have held it: say what is, not what was
            raise PermissionError("another annotator holds this pair now: ask for your next pair")
        try:
            stored = self.store.record_answer(question_id, label, annotator)
        except ValueError as err:
            raise Closed(str(err)) from None
        return AnswerResult(stored, stored.annotator == annotator and stored.label == label)

    def undo(self, annotator: str) -> Undone | None:
        """Take back the annotator's latest answer of the open round (it becomes their pair again)."""
        check_annotator(annotator)
        before = self.store.last_answer(self.id, annotator)
        q = self.store.undo_last(self.id, annotator, self.claim_seconds)
        return None if q is None else Undone(q, before if before is not None else -1)

    # --- rounds --------------------------------------------------------------------------------

    def start(self) -> None:
        """Select the first round's pairs unless they are stored already."""
        self._loop.start()

    def advance(self) -> RoundRecord:
        """Close the fully answered round: train the head on every answer, score it, store it with the next
        round's pairs (or finish the campaign), in one transaction."""
        return RoundRecord.from_row(self._loop.advance(), self.k)

    def pending(self) -> list[tuple[Item, Item]]:
        """The current round's unanswered pairs."""
        self._loop.start()
        _, a, b = self.store.pending(self.id)
        return [(self.items[int(i)], self.items[int(j)]) for i, j in zip(a, b, strict=True)]

    def answer_round(self, answer: Answer) -> RoundRecord:
        """Ask ``answer`` about every pending pair of the round, then train the head and select the next round."""
        if self.done:
            raise ValueError("the campaign is finished")
        self._loop.start()
        self._loop.answer_pending(_CallbackOracle(self.items, answer), self.annotator)
        return self.advance()

    def run(self, answer: Answer, rounds: int | None = None) -> list[RoundRecord]:
        """Answer rounds until the campaign is done (or ``rounds`` more rounds); resumable like the app."""
        n = 0
        while not self.done and (rounds is None or n < rounds):
            self.answer_round(answer)
            n += 1
        return self.history()

    def head(self):
        """The newest trained head (``None`` before the first round is trained)."""
        return self._loop.head()

    def save_head(self, folder: str | Path) -> Path:
        """Write the newest head as a checkpoint folder that :func:`rsir.load_head` and `rsir index --head` load."""
        from rsir.models.heads import save_head

        head = self.head()
        if head is None:
            raise ValueError("no round has been trained yet")
        save_head(head, Path(folder), {"campaign": self.name})
        return Path(folder)

    # --- invited annotators (personal tokens) ----------------------------------------------------

    def invite(self, name: str) -> str:
        """A personal token for ``name`` (see :func:`invite_annotator`)."""
        from rsir.active.annotators import invite

        return invite(self.store, self.id, name)

    def annotator_of(self, token: str) -> str | None:
        """The invited annotator whose personal token this is (None: not one of this campaign's)."""
        from rsir.active.annotators import annotator_of

        return annotator_of(self.store, self.id, token)

    def invited_name(self, name: str) -> str | None:
        """The invited annotator ``name`` refers to (any case), or None."""
        from rsir.active.annotators import invited_name

        return invited_name(self.store, self.id, name)

    def close(self) -> None:
        self.store.dispose()


def open_campaign(
    archive: Archive,
    db: str | Path,
    name: str,
    *,
    strategy: str | None = None,
    seed: int | None = None,
    initial: int | None = None,
    per_round: int | None = None,
    rounds: int | None = None,
    split: str | None = None,
    encoder: str | None = None,
    steps: int | None = None,
    closure: float | None = None,
    groups: float | None = None,
    annotator: str = "notebook",
    k: int = 20,
    embeddings: Any = None,
    runtime: str = "auto",
    progress: bool = False,
    claim_seconds: float = 300,
    created_by: str = "rsir.api",
) -> Campaign:
    """Create or resume campaign ``name`` in ``db`` (SQLite file or database URL). A new campaign takes the
    settings given, else the defaults (the ``default`` strategy, 100 initial pairs, 10 rounds of 100, ``holdout:0.2``);
    a resumed one keeps its stored settings, and any given must agree (else CampaignMismatch), whoever created
    it (a notebook, `rsir anneal serve`). With a split (labelled archives; ``split="none"``: none) each round's
    head is scored on the test queries, and pairs come from the train part. ``embeddings`` (ids matching the
    archive's) skip embedding it; ``annotator`` names the answers of :meth:`Campaign.run`."""
    options = CampaignOptions(strategy=strategy, seed=seed, initial=initial, per_round=per_round, rounds=rounds,
                              steps=steps, closure=closure, groups=groups, split=split, encoder=encoder)  # fmt: skip
    return _open(archive, db, name, options, annotator=annotator, k=k, embeddings=embeddings, runtime=runtime,
                 progress=progress, claim_seconds=claim_seconds, created_by=created_by)  # fmt: skip


def _open(
    archive: Archive,
    db: str | Path,
    name: str,
    options: CampaignOptions,
    *,
    annotator: str,
    k: int,
    embeddings: Any,
    runtime: str,
    progress: bool,
    claim_seconds: float,
    created_by: str,
) -> Campaign:
    from rsir.active.campaign import CampaignLoop, CampaignSettings, create_or_resume_campaign
    from rsir.active.store import Store
    from rsir.models.encoders import DEFAULT_ENCODER

    store = Store(str(db))
    row = store.campaign_by_name(name)
    stored = CampaignSettings.from_dict(row.settings) if row is not None else None
    encoder = (stored.extra.get("encoder") if stored else None) or options.encoder or DEFAULT_ENCODER
    settings = _settings(stored, options, archive, encoder, created_by)
    from rsir.active.strategies import get_strategy

    get_strategy(settings.strategy)  # an unknown name fails before any work
    base = campaign_pool(archive, split=settings.extra.get("split", NO_SPLIT), seed=settings.seed, k=k,
                         encoder=encoder, runtime=runtime, embeddings=embeddings, progress=progress)  # fmt: skip
    head_meta = {"encoder": encoder}
    if base.weights_hash is not None:  # embedded here (not handed in)
        head_meta["weights_hash"] = base.weights_hash
    by_id = {it.id: it for it in archive.items}
    items = [by_id[base.ids[r]] for r in base.pool]
    paths = [_relative(it.path, Path(archive.root)) for it in items]
    cid = create_or_resume_campaign(store, name, settings, [it.id for it in items], paths)
    loop = CampaignLoop(store, cid, base.vectors[base.pool], base.evaluate, head_meta)
    return Campaign(loop, items, Path(archive.root), annotator, k, claim_seconds)


LEARNER_OPTIONS = ("steps", "closure", "groups")  # campaign options that are learner (PairTraining) settings


def _given_value(given: CampaignOptions, name: str):
    from rsir.active.strategies import resolve

    value = getattr(given, name)
    return resolve(value) if name == "strategy" else value


def _stored_value(settings, name: str):
    if name in LEARNER_OPTIONS:
        return getattr(settings.train, name)
    if name in ("split", "encoder"):
        return settings.extra.get(name)
    return getattr(settings, name)


def _settings(stored, given: CampaignOptions, archive: Archive, encoder: str, created_by: str):
    """The stored campaign's settings (options given must agree), or new ones from options + defaults."""
    from rsir.active.campaign import CampaignSettings, PairTraining
    from rsir.active.strategies import resolve

    names = [n for n in CampaignOptions.__dataclass_fields__ if getattr(given, n) is not None]
    if stored is not None:
        wrong = [f"--{n.replace('_', '-')} {getattr(given, n)} (campaign has {_stored_value(stored, n)})"
                 for n in names if _given_value(given, n) != _stored_value(stored, n)]  # fmt: skip
        if wrong:
            raise CampaignMismatch(f"the campaign exists with other settings: {'; '.join(wrong)}; "
                                   "leave those options out to resume it, or pick another --campaign name")  # fmt: skip
        return stored
    o = replace(DEFAULTS, **{n: getattr(given, n) for n in names})
    split = o.split if archive.is_labelled and o.split else NO_SPLIT
    if split != NO_SPLIT:
        from rsir.data.splits import parse_split

        split = str(parse_split(split))
    return CampaignSettings(
        strategy=resolve(str(o.strategy)),  # stored resolved: a later change of `default` does not alter it
        seed=int(o.seed or 0), initial=int(o.initial or 0), per_round=int(o.per_round or 0), rounds=int(o.rounds or 0),
        train=PairTraining(**{n: getattr(o, n) for n in LEARNER_OPTIONS if getattr(o, n) is not None}),
        extra={"archive": str(archive.root), "encoder": encoder, "split": split, "app": created_by},
    )  # fmt: skip


def _relative(path: Path, root: Path) -> str:
    """The item's path relative to the archive root (symlinks untouched; the image route resolves them)."""
    for base in (root.absolute(), root.resolve()):
        if Path(path).absolute().is_relative_to(base):
            return Path(path).absolute().relative_to(base).as_posix()
    return str(path)


def invite_annotator(db: str | Path, campaign: str, name: str) -> str:
    """A personal token for ``name`` on ``campaign`` (`rsir anneal invite`): answers and undo through it are
    bound to that name; inviting again revokes the previous token. The store keeps only its hash. Raises
    ``LookupError`` when the store holds no such campaign."""
    from rsir.active.annotators import invite
    from rsir.active.store import Store

    store = Store(str(db))
    try:
        row = store.campaign_by_name(campaign)
        if row is None:
            raise LookupError(f"no campaign {campaign!r}")
        return invite(store, row.id, name)
    finally:
        store.dispose()
