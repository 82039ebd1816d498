"""The campaign behind the annotation app: settings, items, and the background round work.

A person replaces the simulated oracle: questions are claimed and answered one at a time through
:class:`rsir.active.store.Store`; when a round is fully answered, a background thread trains the head
and selects the next round (:meth:`rsir.active.campaign.CampaignLoop.advance`, one transaction), so
HTTP requests never wait for training. While that thread works, answers and undos to the closing
round are refused (409): what the head was trained on is exactly what the store keeps.

One server process per campaign: the guard against a second concurrent ``advance`` is this
process's lock (the database's unique keys reject a duplicate round anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rsir.active.campaign import CampaignLoop, CampaignSettings, PairTraining, create_or_resume_campaign
from rsir.active.evaluator import SplitEvaluator as Evaluation  # shared with `anneal simulate`
from rsir.active.store import CampaignMismatch, Question, Store
from rsir.active.strategies import resolve
from rsir.data.items import Archive

log = logging.getLogger("rsir.app.annotate")

NO_SPLIT = "none"
RETRY_AFTER_S = 10.0  # a failed round job is retried no sooner than this


class Closed(RuntimeError):
    """The round is closing (being trained on) or the campaign is finished: no more changes."""


@dataclass(frozen=True)
class ServeOptions:
    """Campaign options from the command line; ``None`` = the stored campaign's value, or the default."""

    strategy: str | None = None
    seed: int | None = None
    initial: int | None = None
    per_round: int | None = None
    rounds: int | None = None
    steps: int | None = None  # optimiser steps per round (None: the learner's default)
    closure: float | None = None  # weight of implied pairs (None: the learner's default)
    split: str | None = None
    encoder: str | None = None


DEFAULTS = ServeOptions(strategy="default", seed=0, initial=100, per_round=100, rounds=10, split="holdout:0.2")


def _given_value(given: ServeOptions, name: str):
    value = getattr(given, name)
    return resolve(value) if name == "strategy" else value


def _stored_value(settings: CampaignSettings, name: str):
    if name in ("steps", "closure"):
        return getattr(settings.train, name)
    if name in ("split", "encoder"):
        return settings.extra.get(name)
    return getattr(settings, name)


def resolve_settings(
    stored: CampaignSettings | None, given: ServeOptions, archive: Archive, encoder: str
) -> CampaignSettings:
    """The stored campaign's settings (explicit options must agree), or new ones from options + defaults."""
    names = [n for n in ServeOptions.__dataclass_fields__ if getattr(given, n) is not None]
    if stored is not None:
        wrong = [
            f"--{n.replace('_', '-')} {getattr(given, n)} (campaign has {_stored_value(stored, n)})"
            for n in names
            if _given_value(given, n) != _stored_value(stored, n)
        ]
        if wrong:
            raise CampaignMismatch(f"the campaign exists with other settings: {'; '.join(wrong)}; "
                                   "leave those options out to resume it, or pick another --campaign name")  # fmt: skip
        return stored
    o = replace(DEFAULTS, **{n: getattr(given, n) for n in names})
    split = o.split if archive.is_labelled else NO_SPLIT
    if split != NO_SPLIT:
        from rsir.data.splits import parse_split

        split = str(parse_split(split))
    return CampaignSettings(
        strategy=resolve(o.strategy),  # stored resolved: a later change of `default` does not alter it
        seed=o.seed,
        initial=o.initial,
        per_round=o.per_round,
        rounds=o.rounds,
        train=PairTraining(**{k: getattr(o, k) for k in ("steps", "closure") if getattr(o, k) is not None}),
        extra={"archive": str(archive.root), "encoder": encoder, "split": split, "app": "rsir anneal serve"},
    )


class AnnotationCampaign:
    """One campaign served to people: who gets which pair, answers, undo, and the background rounds."""

    def __init__(
        self,
        store: Store,
        campaign_id: int,
        root: Path,
        features: np.ndarray,
        evaluate: Evaluation | None = None,
        head_meta: dict | None = None,
        claim_seconds: float = 300,
    ) -> None:
        self.store, self.id, self.root = store, campaign_id, Path(root).resolve()
        self.loop = CampaignLoop(store, campaign_id, features, evaluate, head_meta)
        self.evaluate = evaluate
        self.baseline = evaluate(None) if evaluate else {}
        self.claim_seconds = claim_seconds
        self.name = store.campaign(campaign_id).name
        self.lock = threading.Lock()  # guards "is a round job running" against answers and undos
        self._job: threading.Thread | None = None
        self._job_kind = ""
        self.job_round = 0  # the round a "train" job closes
        self._stopping = False
        self.error: str | None = None
        self._failed_at = 0.0

    # --- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        archive: Archive,
        db: str | Path,
        name: str,
        options: ServeOptions = ServeOptions(),
        *,
        embeddings=None,
        progress: bool = False,
        claim_seconds: float = 300,
        runtime: str = "auto",
    ) -> AnnotationCampaign:
        """Create or resume campaign ``name`` over ``archive`` (embedded with the campaign's encoder,
        cached; or ``embeddings`` given, ids matching the archive's). Raises CampaignMismatch."""
        from rsir.models.encoders import DEFAULT_ENCODER

        store = Store(db)
        row = store.campaign_by_name(name)
        stored = CampaignSettings.from_dict(row.settings) if row is not None else None
        encoder = (stored.extra.get("encoder") if stored else None) or options.encoder or DEFAULT_ENCODER
        settings = resolve_settings(stored, options, archive, encoder)
        from rsir.active.strategies import get_strategy

        get_strategy(settings.strategy)  # an unknown name fails before any work
        head_meta = {"encoder": encoder}
        if embeddings is None:
            from rsir.cbir.space import Space

            space = Space.load(encoder, runtime=runtime)
            embeddings = space.embed(archive, progress=progress)
            head_meta["weights_hash"] = space.encoder.weights_hash
        by_id = {it.id: it for it in archive.items}
        ids = list(embeddings.ids)
        labels = [by_id[i].labels for i in ids]
        split = settings.extra.get("split", NO_SPLIT)
        if split == NO_SPLIT:
            pool, evaluate = np.arange(len(ids)), None
        else:
            from rsir.cbir.evaluation import split_of

            s = split_of(labels, split, settings.seed)
            pool, evaluate = s.gallery, Evaluation(embeddings.vectors, labels, s.query, s.gallery)
        paths = [_relative(by_id[ids[r]].path, Path(archive.root)) for r in pool]
        cid = create_or_resume_campaign(store, name, settings, [ids[r] for r in pool], paths)
        return cls(store, cid, Path(archive.root), embeddings.vectors[pool], evaluate, head_meta, claim_seconds)

    # --- background rounds -------------------------------------------------------------------

    def start(self) -> None:
        """Begin serving: select the first round or finish a round that was complete when stopped."""
        self._stopping = False
        self.kick()

    def stop(self, timeout: float = 0.0) -> None:
        self._stopping = True
        job = self._job
        if job is not None and timeout > 0:
            job.join(timeout)

    @property
    def busy(self) -> bool:
        job = self._job
        return job is not None and job.is_alive()

    @property
    def closing(self) -> bool:
        """The current round is being trained on: its answers are final."""
        return self.busy and self._job_kind == "train"

    def _needs_job(self) -> str:
        """'' when nothing is due; else what the next job does ('select' or 'train')."""
        if self.loop.done:
            return ""
        if not self.store.rounds(self.id):
            return "select"
        return "train" if self.store.round_complete(self.id) else ""

    def kick(self) -> bool:
        """Start the round job if one is due and none runs; True when a job is (now) running."""
        with self.lock:
            if self.busy:
                return True
            if self._stopping or (self.error and time.monotonic() - self._failed_at < RETRY_AFTER_S):
                return False
            kind = self._needs_job()
            if not kind:
                return False
            self._job_kind, self.job_round = kind, self.loop.current_round
            self._job = threading.Thread(target=self._run_job, name=f"anneal-{self.name}", daemon=True)
            self._job.start()
            return True

    def _run_job(self) -> None:
        try:
            self.loop.start()
            while not self._stopping and not self.loop.done and self.store.round_complete(self.id):
                with self.lock:
                    self._job_kind, self.job_round = "train", self.loop.current_round
                record = self.loop.advance()
                log.info("campaign %s: round %s trained on %s answers %s", self.name, record["round"],
                         record["n_labelled"], {k: v for k, v in record.items() if k.startswith("map")})  # fmt: skip
            self.error = None
        except Exception as err:  # shown to annotators as a retrying state, details only in the log
            log.exception("campaign %s: preparing the next round failed", self.name)
            self.error = f"preparing the next round failed ({type(err).__name__}); retrying, see the server log"
            self._failed_at = time.monotonic()

    def job_kind(self) -> str:
        """'select' / 'train' while a round job runs (or is due), '' otherwise."""
        if self.busy:
            return self._job_kind
        return self._needs_job()

    # --- annotators --------------------------------------------------------------------------

    def next_question(self, annotator: str) -> Question | None:
        """The annotator's pair to answer: their held one, else a newly claimed free one."""
        check_annotator(annotator)
        # no guard needed while a job runs: a complete round has no pending pair, and undo is refused
        return self.store.next_pending_question(self.id, annotator, self.claim_seconds)

    def answer(self, annotator: str, question_id: int, label: int) -> tuple[Question, bool]:
        """Store an answer; returns the question and whether this annotator's answer is the stored one.

        Raises KeyError (no such question here), Closed (round closing or closed) and
        PermissionError (another annotator holds the pair now: the caller's claim had expired)."""
        check_annotator(annotator)
        with self.lock:
            if self.closing:
                raise Closed("this round is closed: the model is training on it")
            from rsir.app.annotate.stats import question_state

            q = question_state(self.store, self.id, question_id)
            if q is None:
                raise KeyError(f"no question {question_id} in this campaign")
            if q.held_by_other(annotator):  # the caller may never have held it: say what is, not what was
                raise PermissionError("another annotator holds this pair now: ask for your next pair")
            try:
                stored = self.store.record_answer(question_id, label, annotator)
            except ValueError as err:
                raise Closed(str(err)) from None
        if stored.label is not None and self.store.round_complete(self.id):
            self.kick()
        return stored, stored.annotator == annotator and stored.label == label

    def undo(self, annotator: str) -> tuple[Question, int] | None:
        """Take back the annotator's latest answer of the open round (it becomes their current pair);
        returns that pair and the label taken back, or None when there is nothing to undo."""
        from rsir.app.annotate.stats import last_answer

        check_annotator(annotator)
        with self.lock:
            if self.closing:
                raise Closed("this round is closed: the model is training on it")
            before = last_answer(self.store, self.id, annotator)
            q = self.store.undo_last(self.id, annotator, self.claim_seconds)
        return None if q is None else (q, before if before is not None else -1)

    # --- invited annotators (personal tokens) ---------------------------------------------------

    def annotator_of(self, token: str) -> str | None:
        """The invited annotator whose personal token this is (None: not one of this campaign's)."""
        from rsir.active.annotators import annotator_of

        return annotator_of(self.store, self.id, token)

    def invited_name(self, name: str) -> str | None:
        from rsir.active.annotators import invited_name

        return invited_name(self.store, self.id, name)

    def image_path(self, idx: int) -> Path:
        """The file of item ``idx`` from the store, resolved inside the archive root (OutsideRoot if not)."""
        from rsir.app.annotate.stats import item_path
        from rsir.app.common import safe_path

        return safe_path(self.root, item_path(self.store, self.id, idx))


def check_annotator(name: str) -> None:
    """ValueError for a name that is no annotator's (the oracle's, in any case: ``Oracle`` too)."""
    from rsir.active.annotators import check_name

    check_name(name)


def _relative(path: Path, root: Path) -> str:
    """The item's path relative to the archive root (symlinks untouched; the image route resolves them)."""
    for base in (root.absolute(), root.resolve()):
        if Path(path).absolute().is_relative_to(base):
            return Path(path).absolute().relative_to(base).as_posix()
    return str(path)
