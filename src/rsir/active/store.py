"""The ANNEAL campaign store: campaigns, their items, questions (pairs) and answers, rounds, checkpoints.

One database is the single source of truth of a campaign, shared by the simulation loop and the
human annotation app: SQLite by default (a file; WAL journal and a busy timeout, so several
processes may read and write it at once) or PostgreSQL by URL (``postgresql+psycopg://...``).

Life of a round ``r``: the strategy's picks are stored as *questions* with no label (pending);
annotators -- the simulated oracle or people through the app -- claim pending questions
(:meth:`Store.next_pending_question`, a claim expires so a closed browser tab frees its pair) and
answer them (:meth:`Store.record_answer`: a row update with annotator and time, idempotent).
When every question of the round is answered (:meth:`Store.round_complete`), the loop trains the
head, stores its checkpoint and the round's metrics, and stores round ``r + 1``'s questions, all in
one transaction (see ``rsir.active.campaign``), so a killed run resumes from the last finished step.

Pairs are indices into the campaign's items (``i < j``), unique per campaign. Labels: 1 similar,
0 dissimilar, -1 skipped (cannot tell), ``NULL`` pending.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from sqlalchemy import CursorResult, Engine, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rsir.active.db import (
    LABELS,
    ORACLE,
    CampaignRow,
    CheckpointRow,
    ItemRow,
    QuestionRow,
    RoundRow,
    database_url,
    make_engine,
    utcnow,
)
from rsir.active.store_views import CampaignViews, latest_answer

__all__ = ["ORACLE", "CampaignMismatch", "Question", "Store", "database_url", "make_engine"]

_Row = TypeVar("_Row")


def _existing(s: Session, row_type: type[_Row], key: Any, what: str) -> _Row:
    """The row at ``key``, or ``KeyError("no WHAT KEY")`` (the apps answer it with 404)."""
    row = s.get(row_type, key)
    if row is None:
        raise KeyError(f"no {what} {key}")
    return row


@dataclass(frozen=True)
class Question:
    """A pair to show an annotator (item ids and paths for the app)."""

    id: int
    campaign_id: int
    round: int
    item_a: int
    item_b: int
    id_a: str
    id_b: str
    path_a: str
    path_b: str
    label: int | None
    annotator: str | None


class CampaignMismatch(ValueError):
    """A campaign of that name exists with other settings."""


class Store(CampaignViews):
    """Campaign state in one database; every method is one short transaction."""

    def __init__(self, db: str | Path | Engine) -> None:
        self.engine = db if isinstance(db, Engine) else make_engine(db)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()

    # --- campaigns ---------------------------------------------------------------------------

    def create_or_resume_campaign(
        self,
        name: str,
        strategy: str,
        seed: int,
        settings: dict[str, Any],
        item_ids: Sequence[str],
        item_paths: Sequence[str] | None = None,
    ) -> int:
        """Id of campaign ``name``: created with its items, or the existing one when the settings,
        strategy, seed and items agree (else :class:`CampaignMismatch`)."""
        settings = json.loads(json.dumps(settings))  # what the JSON column will give back
        paths = list(item_paths) if item_paths is not None else [""] * len(item_ids)
        try:
            return self._create_or_resume(name, strategy, seed, settings, item_ids, paths)
        except IntegrityError:  # another process created it between our look-up and insert
            return self._create_or_resume(name, strategy, seed, settings, item_ids, paths)

    def _create_or_resume(
        self, name: str, strategy: str, seed: int, settings: dict, item_ids: Sequence[str], paths: list[str]
    ) -> int:
        with self.session() as s:
            row = s.scalar(select(CampaignRow).where(CampaignRow.name == name))
            if row is not None:
                self._check_same(s, row, strategy, seed, settings, item_ids)
                return row.id
            row = CampaignRow(name=name, strategy=strategy, seed=seed, settings=settings, n_items=len(item_ids))
            s.add(row)
            s.flush()
            rows = [
                {"campaign_id": row.id, "idx": k, "item_id": str(i), "path": str(p)}
                for k, (i, p) in enumerate(zip(item_ids, paths, strict=True))
            ]
            for start in range(0, len(rows), 10_000):
                s.execute(insert(ItemRow), rows[start : start + 10_000])
            return row.id

    @staticmethod
    def _check_same(s: Session, row: CampaignRow, strategy: str, seed: int, settings: dict, ids: Sequence[str]) -> None:
        problems = []
        if (row.strategy, row.seed) != (strategy, seed):
            problems.append(f"strategy/seed {row.strategy}/{row.seed} != {strategy}/{seed}")
        if row.settings != settings:
            diff = sorted(k for k in set(row.settings) | set(settings) if row.settings.get(k) != settings.get(k))
            problems.append(f"settings differ in {', '.join(diff)}")
        stored = s.scalars(select(ItemRow.item_id).where(ItemRow.campaign_id == row.id).order_by(ItemRow.idx)).all()
        if list(stored) != [str(i) for i in ids]:
            problems.append("items differ")
        if problems:
            raise CampaignMismatch(f"campaign {row.name!r} exists with other settings: {'; '.join(problems)}")

    def campaign(self, campaign_id: int) -> CampaignRow:
        with self.session() as s:
            return _existing(s, CampaignRow, campaign_id, "campaign")

    def campaign_by_name(self, name: str) -> CampaignRow | None:
        with self.session() as s:
            return s.scalar(select(CampaignRow).where(CampaignRow.name == name))

    def item_ids(self, campaign_id: int) -> list[str]:
        with self.session() as s:
            q = select(ItemRow.item_id).where(ItemRow.campaign_id == campaign_id).order_by(ItemRow.idx)
            return list(s.scalars(q).all())

    def set_status(self, campaign_id: int, status: str) -> None:
        with self.session() as s:
            s.execute(update(CampaignRow).where(CampaignRow.id == campaign_id).values(status=status))

    # --- questions and answers ---------------------------------------------------------------

    def add_round(
        self, s: Session, campaign_id: int, number: int, pair_i: np.ndarray, pair_j: np.ndarray, selection: dict
    ) -> None:
        """Store round ``number``'s questions (pending) and make it current, inside session ``s``."""
        now = utcnow()
        rows = [
            {"campaign_id": campaign_id, "round": number, "position": k, "item_a": int(a), "item_b": int(b),
             "asked_at": now}
            for k, (a, b) in enumerate(zip(np.minimum(pair_i, pair_j), np.maximum(pair_i, pair_j), strict=True))
        ]  # fmt: skip
        if rows:
            s.execute(insert(QuestionRow), rows)
        s.add(RoundRow(campaign_id=campaign_id, number=number, n_questions=len(rows), selection=selection))
        s.execute(update(CampaignRow).where(CampaignRow.id == campaign_id).values(current_round=number))

    def next_pending_question(self, campaign_id: int, annotator: str, claim_seconds: float = 600) -> Question | None:
        """Claim and return a pending question of the current round for ``annotator``.

        The annotator's own unexpired claim comes back first (a page reload shows the same pair);
        otherwise the first unclaimed (or expired) question is claimed with a compare-and-set
        update, so two annotators asking at once get different pairs. ``None`` when none is left.
        """
        for _ in range(20):  # lost races retry with the next free question
            with self.session() as s:
                camp = _existing(s, CampaignRow, campaign_id, "campaign")
                now = utcnow()
                pending = (
                    (QuestionRow.campaign_id == campaign_id)
                    & (QuestionRow.round == camp.current_round)
                    & QuestionRow.label.is_(None)
                )
                mine = s.scalar(
                    select(QuestionRow.id)
                    .where(pending & (QuestionRow.claimed_by == annotator) & (QuestionRow.claim_expires > now))
                    .order_by(QuestionRow.position)
                    .limit(1)
                )
                free = (QuestionRow.claimed_by.is_(None)) | (QuestionRow.claim_expires <= now)
                qid = mine or s.scalar(
                    select(QuestionRow.id).where(pending & free).order_by(QuestionRow.position).limit(1)
                )
                if qid is None:
                    return None
                claim = QuestionRow.label.is_(None) & (free | (QuestionRow.claimed_by == annotator))
                stmt = (
                    update(QuestionRow)
                    .where((QuestionRow.id == qid) & claim)
                    .values(claimed_by=annotator, claim_expires=now + timedelta(seconds=claim_seconds))
                )
                done = cast("CursorResult[Any]", s.execute(stmt))  # an UPDATE's result: it has a rowcount
                if done.rowcount == 1:
                    return self._question(s, qid)
        return None

    def record_answer(self, question_id: int, label: int, annotator: str) -> Question:
        """Answer a question (1 similar, 0 dissimilar, -1 skip); idempotent.

        Repeating an answer changes nothing; the annotator who answered may correct it while the
        round is open; an answer by someone else to an answered question is ignored (first wins).
        Answers to a round that has been trained on are refused (``ValueError``).
        """
        label = int(label)
        if label not in LABELS:
            raise ValueError(f"label must be 1 (similar), 0 (dissimilar) or -1 (skip), got {label}")
        with self.session() as s:
            q = _existing(s, QuestionRow, question_id, "question")
            if q.label is not None and (q.label == label or q.annotator != annotator):
                return self._question(s, question_id)
            if q.round != _existing(s, CampaignRow, q.campaign_id, "campaign").current_round:
                raise ValueError(f"question {question_id} belongs to closed round {q.round}")
            q.label, q.annotator, q.answered_at = label, annotator, utcnow()
            q.claimed_by, q.claim_expires = None, None
            s.flush()
            return self._question(s, question_id)

    def record_answers(self, question_ids: Sequence[int], labels: Sequence[int], annotator: str = ORACLE) -> int:
        """Bulk answers (the simulated oracle): pending questions only, one transaction. Returns the count."""
        now = utcnow()
        rows = [{"qid": int(q), "label": int(y)} for q, y in zip(question_ids, labels, strict=True)]
        if not rows:
            return 0
        if any(r["label"] not in LABELS for r in rows):
            raise ValueError("labels must be 1, 0 or -1")

        table = cast(Table, QuestionRow.__table__)
        stmt = (
            update(table)
            .where((table.c.id == bindparam("qid")) & table.c.label.is_(None))
            .values(label=bindparam("label"), annotator=annotator, answered_at=now, claimed_by=None,
                    claim_expires=None)
        )  # fmt: skip
        with self.session() as s:
            s.connection().execute(stmt, rows)
        return len(rows)

    def undo_last(self, campaign_id: int, annotator: str, claim_seconds: float = 600) -> Question | None:
        """Take back ``annotator``'s latest answer in the current round: the question is pending
        again and claimed by them for ``claim_seconds`` (like any claim), so it is the next one they
        see. ``None`` if there is none."""
        with self.session() as s:
            camp = _existing(s, CampaignRow, campaign_id, "campaign")
            q = s.scalar(latest_answer(select(QuestionRow), campaign_id, camp.current_round, annotator))
            if q is None:
                return None
            q.label, q.annotator, q.answered_at = None, None, None
            q.claimed_by, q.claim_expires = annotator, utcnow() + timedelta(seconds=claim_seconds)
            s.flush()
            return self._question(s, q.id)

    def _question(self, s: Session, qid: int) -> Question:
        q = _existing(s, QuestionRow, qid, "question")
        s.refresh(q)
        a = _existing(s, ItemRow, (q.campaign_id, q.item_a), "item")
        b = _existing(s, ItemRow, (q.campaign_id, q.item_b), "item")
        return Question(q.id, q.campaign_id, q.round, q.item_a, q.item_b, a.item_id, b.item_id, a.path, b.path,
                        q.label, q.annotator)  # fmt: skip

    def pending(self, campaign_id: int, round_: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Question ids and pairs still unanswered in the current (or given) round."""
        with self.session() as s:
            number = _existing(s, CampaignRow, campaign_id, "campaign").current_round if round_ is None else round_
            rows = s.execute(
                select(QuestionRow.id, QuestionRow.item_a, QuestionRow.item_b)
                .where(
                    (QuestionRow.campaign_id == campaign_id)
                    & (QuestionRow.round == number)
                    & QuestionRow.label.is_(None)
                )
                .order_by(QuestionRow.position)
            ).all()
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return arr[:, 0], arr[:, 1], arr[:, 2]

    def round_complete(self, campaign_id: int) -> bool:
        """True when every question of the current round has an answer (skips count)."""
        with self.session() as s:
            camp = _existing(s, CampaignRow, campaign_id, "campaign")
            left = s.scalar(
                select(func.count())
                .select_from(QuestionRow)
                .where(
                    (QuestionRow.campaign_id == campaign_id)
                    & (QuestionRow.round == camp.current_round)
                    & QuestionRow.label.is_(None)
                )
            )
            has_round = s.get(RoundRow, (campaign_id, camp.current_round)) is not None
            return has_round and left == 0

    def answered_pairs(self, campaign_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All answered pairs ``(i, j, label int8)`` in the order they were asked (skips included)."""
        with self.session() as s:
            rows = s.execute(
                select(QuestionRow.item_a, QuestionRow.item_b, QuestionRow.label)
                .where((QuestionRow.campaign_id == campaign_id) & QuestionRow.label.is_not(None))
                .order_by(QuestionRow.round, QuestionRow.position)
            ).all()
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int8)

    def all_pairs(self, campaign_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Every pair ever asked (answered or pending)."""
        with self.session() as s:
            rows = s.execute(
                select(QuestionRow.item_a, QuestionRow.item_b).where(QuestionRow.campaign_id == campaign_id)
            ).all()
        arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

    # --- rounds and checkpoints --------------------------------------------------------------

    def rounds(self, campaign_id: int) -> list[RoundRow]:
        with self.session() as s:
            q = select(RoundRow).where(RoundRow.campaign_id == campaign_id).order_by(RoundRow.number)
            return list(s.scalars(q).all())

    def finish_round(
        self,
        s: Session,
        campaign_id: int,
        number: int,
        n_labelled: int,
        metrics: dict,
        head_config: dict,
        state: bytes,
        keep_checkpoints: int = 1,
    ) -> None:
        """Inside session ``s``: store the round's head and metrics; prune all but the newest
        ``keep_checkpoints`` checkpoint blobs of the campaign (rows stay; 0 keeps every blob)."""
        s.execute(
            update(RoundRow)
            .where((RoundRow.campaign_id == campaign_id) & (RoundRow.number == number))
            .values(n_labelled=n_labelled, metrics=metrics, trained_at=utcnow())
        )
        s.add(CheckpointRow(campaign_id=campaign_id, round=number, head_config=head_config, state=state))
        if keep_checkpoints > 0:
            s.flush()
            s.execute(
                update(CheckpointRow)
                .where((CheckpointRow.campaign_id == campaign_id) & (CheckpointRow.round <= number - keep_checkpoints))
                .values(state=None)
            )

    def latest_checkpoint(self, campaign_id: int) -> CheckpointRow | None:
        """Newest checkpoint that still has its weights."""
        with self.session() as s:
            return s.scalar(
                select(CheckpointRow)
                .where((CheckpointRow.campaign_id == campaign_id) & CheckpointRow.state.is_not(None))
                .order_by(CheckpointRow.round.desc())
                .limit(1)
            )
