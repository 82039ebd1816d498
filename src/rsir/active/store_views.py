"""Read-only views of a campaign's tables for the annotation app (a question's state, a round's progress,
answers per round and annotator), as methods of :class:`rsir.active.store.Store`: the app reads campaigns
through the store only, never through the table classes."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rsir.active.db import CampaignRow, ItemRow, QuestionRow, utcnow


@dataclass(frozen=True)
class QuestionState:
    round: int
    label: int | None
    annotator: str | None
    claimed_by: str | None
    claim_expires: datetime | None

    def held_by_other(self, annotator: str, now: datetime | None = None) -> bool:
        """Pending and claimed (unexpired) by someone else."""
        now = now or utcnow()
        return (
            self.label is None
            and self.claimed_by not in (None, annotator)
            and self.claim_expires is not None
            and self.claim_expires > now
        )


def latest_answer(query, campaign_id: int, round_: int, annotator: str):
    """``query`` narrowed to ``annotator``'s latest answer of round ``round_`` (what undo takes back)."""
    return (
        query.where(
            (QuestionRow.campaign_id == campaign_id)
            & (QuestionRow.round == round_)
            & (QuestionRow.annotator == annotator)
            & QuestionRow.label.is_not(None)
        )
        .order_by(QuestionRow.answered_at.desc(), QuestionRow.id.desc())
        .limit(1)
    )


class CampaignViews:
    """Mixed into :class:`rsir.active.store.Store` (which provides ``session()``)."""

    def session(self) -> AbstractContextManager[Session]:  # provided by Store
        raise NotImplementedError

    def question_state(self, campaign_id: int, question_id: int) -> QuestionState | None:
        with self.session() as s:
            q = s.get(QuestionRow, question_id)
            if q is None or q.campaign_id != campaign_id:
                return None
            return QuestionState(q.round, q.label, q.annotator, q.claimed_by, q.claim_expires)

    def last_answer(self, campaign_id: int, annotator: str) -> int | None:
        """Label of ``annotator``'s latest answer in the current round (what :meth:`Store.undo_last` takes back)."""
        with self.session() as s:
            camp = s.get(CampaignRow, campaign_id)
            return s.scalar(latest_answer(select(QuestionRow.label), campaign_id, camp.current_round, annotator))

    def item_path(self, campaign_id: int, idx: int) -> str:
        """The stored path of item ``idx`` (KeyError if the campaign has no such item)."""
        with self.session() as s:
            row = s.get(ItemRow, (campaign_id, idx))
            if row is None or not row.path:
                raise KeyError(f"no item {idx} in this campaign")
            return row.path

    def round_progress(self, campaign_id: int, annotator: str | None = None) -> dict:
        """Counts of the current round: questions, answered (similar / dissimilar / skipped), this
        annotator's answers, pairs held by other annotators, pending."""
        now = utcnow()
        with self.session() as s:
            camp = s.get(CampaignRow, campaign_id)
            rows = s.execute(
                select(
                    QuestionRow.label, QuestionRow.annotator, QuestionRow.claimed_by, QuestionRow.claim_expires
                ).where((QuestionRow.campaign_id == campaign_id) & (QuestionRow.round == camp.current_round))
            ).all()
            total_answered = s.scalar(
                select(func.count())
                .select_from(QuestionRow)
                .where((QuestionRow.campaign_id == campaign_id) & QuestionRow.label.is_not(None))
            )
        labels = [r.label for r in rows]
        held = sum(QuestionState(0, *r).held_by_other(annotator or "", now) for r in rows)
        return {
            "round": camp.current_round,
            "total": len(rows),
            "answered": sum(y is not None for y in labels),
            "similar": labels.count(1),
            "dissimilar": labels.count(0),
            "skipped": labels.count(-1),
            "mine": sum(r.label is not None and r.annotator == annotator for r in rows) if annotator else 0,
            "held_by_others": held,
            "pending": labels.count(None),
            "campaign_answered": int(total_answered or 0),
        }

    def answers_by_round(self, campaign_id: int) -> list[dict]:
        """One row per (round, annotator): answers, similar, dissimilar, skipped, first and last answer time."""
        with self.session() as s:
            rows = s.execute(
                select(
                    QuestionRow.round,
                    QuestionRow.annotator,
                    QuestionRow.label,
                    func.count(),
                    func.min(QuestionRow.answered_at),
                    func.max(QuestionRow.answered_at),
                )
                .where((QuestionRow.campaign_id == campaign_id) & QuestionRow.label.is_not(None))
                .group_by(QuestionRow.round, QuestionRow.annotator, QuestionRow.label)
            ).all()
        table: dict[tuple[int, str], dict] = {}
        names = {1: "similar", 0: "dissimilar", -1: "skipped"}
        for rnd, who, label, n, first, last in rows:
            new = {"round": rnd, "annotator": who, "answers": 0, "similar": 0, "dissimilar": 0, "skipped": 0,
                   "first": first, "last": last}  # fmt: skip
            row = table.setdefault((rnd, who), new)
            row["answers"] += n
            row[names[label]] += n
            row["first"], row["last"] = min(row["first"], first), max(row["last"], last)
        return [table[k] for k in sorted(table)]
