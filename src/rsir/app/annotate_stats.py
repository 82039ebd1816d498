"""Read-only views of a campaign for the annotation app: a question's state, a round's progress, the
answers per round and annotator, and the mAP curve as an inline SVG."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape

from sqlalchemy import func, select

from rsir.active.db import CampaignRow, ItemRow, QuestionRow, utcnow
from rsir.active.store import Store


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


def question_state(store: Store, campaign_id: int, question_id: int) -> QuestionState | None:
    with store.session() as s:
        q = s.get(QuestionRow, question_id)
        if q is None or q.campaign_id != campaign_id:
            return None
        return QuestionState(q.round, q.label, q.annotator, q.claimed_by, q.claim_expires)


def last_answer(store: Store, campaign_id: int, annotator: str) -> int | None:
    """Label of ``annotator``'s latest answer in the current round (what :meth:`Store.undo_last` takes back)."""
    with store.session() as s:
        camp = s.get(CampaignRow, campaign_id)
        return s.scalar(
            select(QuestionRow.label)
            .where(
                (QuestionRow.campaign_id == campaign_id)
                & (QuestionRow.round == camp.current_round)
                & (QuestionRow.annotator == annotator)
                & QuestionRow.label.is_not(None)
            )
            .order_by(QuestionRow.answered_at.desc(), QuestionRow.id.desc())
            .limit(1)
        )


def item_path(store: Store, campaign_id: int, idx: int) -> str:
    """The stored path of item ``idx`` (KeyError if the campaign has no such item)."""
    with store.session() as s:
        row = s.get(ItemRow, (campaign_id, idx))
        if row is None or not row.path:
            raise KeyError(f"no item {idx} in this campaign")
        return row.path


def round_progress(store: Store, campaign_id: int, annotator: str | None = None) -> dict:
    """Counts of the current round: questions, answered (similar / dissimilar / skipped), this
    annotator's answers, pairs held by other annotators, pending."""
    now = utcnow()
    with store.session() as s:
        camp = s.get(CampaignRow, campaign_id)
        rows = s.execute(
            select(QuestionRow.label, QuestionRow.annotator, QuestionRow.claimed_by, QuestionRow.claim_expires).where(
                (QuestionRow.campaign_id == campaign_id) & (QuestionRow.round == camp.current_round)
            )
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


def answers_by_round(store: Store, campaign_id: int) -> list[dict]:
    """One row per (round, annotator): answers, similar, dissimilar, skipped, first and last answer time."""
    with store.session() as s:
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
        row = table.setdefault((rnd, who), {"round": rnd, "annotator": who, "answers": 0, "similar": 0,
                                            "dissimilar": 0, "skipped": 0, "first": first, "last": last})  # fmt: skip
        row["answers"] += n
        row[names[label]] += n
        row["first"], row["last"] = min(row["first"], first), max(row["last"], last)
    return [table[k] for k in sorted(table)]


def curve_points(store: Store, campaign_id: int, metric: str = "map@20") -> list[dict]:
    """Trained rounds with their answered-pair count and ``metric`` (if evaluated)."""
    return [
        {"round": r.number, "n_labelled": r.n_labelled, metric: (r.metrics or {}).get(metric)}
        for r in store.rounds(campaign_id)
        if r.trained_at is not None
    ]


def curve_svg(points: list[dict], baseline: float | None, metric: str = "map@20", size=(560, 300)) -> str:
    """``metric`` against answered pairs as a small standalone SVG (baseline dashed)."""
    w, h, pad = size[0], size[1], 44
    pts = [(p["n_labelled"], p[metric]) for p in points if p.get(metric) is not None]
    if pts and baseline is not None:
        pts.insert(0, (0, baseline))  # no answers yet: the encoder's own space
    ys = [y for _, y in pts] + ([baseline] if baseline is not None else [])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="{escape(metric)} against answered pairs" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="#fff"/>',
    ]
    if not ys:
        parts.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" fill="#5f6b73">no {escape(metric)} yet: '
                     "the archive has no test labels, or no round is trained</text></svg>")  # fmt: skip
        return "".join(parts)
    lo, hi = max(0.0, min(ys) - 0.05), min(1.0, max(ys) + 0.05)
    hi = hi if hi > lo else lo + 0.1
    xmax = max([x for x, _ in pts] + [1])
    sx = lambda x: pad + (w - 1.5 * pad) * x / xmax  # noqa: E731
    sy = lambda y: h - pad - (h - 1.8 * pad) * (y - lo) / (hi - lo)  # noqa: E731
    parts.append(f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad / 2}" y2="{h - pad}" stroke="#888"/>')
    parts.append(f'<line x1="{pad}" y1="{pad * 0.8}" x2="{pad}" y2="{h - pad}" stroke="#888"/>')
    for frac in (0, 0.5, 1):
        y = lo + frac * (hi - lo)
        parts.append(f'<text x="{pad - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    parts.append(f'<text x="{pad}" y="{h - pad + 16}" text-anchor="middle">0</text>')
    parts.append(f'<text x="{sx(xmax):.1f}" y="{h - pad + 16}" text-anchor="middle">{xmax}</text>')
    parts.append(f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">answered pairs</text>')
    parts.append(f'<text x="12" y="{pad * 0.6}">{escape(metric)}</text>')
    if baseline is not None:
        parts.append(f'<line class="baseline" x1="{pad}" x2="{w - pad / 2}" y1="{sy(baseline):.1f}" '
                     f'y2="{sy(baseline):.1f}" stroke="#888" stroke-dasharray="5 4"/>'
                     f'<text x="{w - pad / 2}" y="{sy(baseline) - 5:.1f}" text-anchor="end" fill="#5f6b73">'
                     f"no training {baseline:.3f}</text>")  # fmt: skip
    if pts:
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline class="curve" points="{line}" fill="none" stroke="#1f6feb" stroke-width="2"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="#1f6feb"><title>{x} pairs: '
                  f"{y:.3f}</title></circle>" for x, y in pts]  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)
