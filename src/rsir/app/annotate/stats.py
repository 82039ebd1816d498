"""Read-only views of a campaign for the annotation app: a question's state, a round's progress, the
answers per round and annotator (all through :class:`rsir.active.store.Store`), and the mAP curve as SVG."""

from __future__ import annotations

from rsir.active.store import Store
from rsir.active.store_views import QuestionState


def question_state(store: Store, campaign_id: int, question_id: int) -> QuestionState | None:
    return store.question_state(campaign_id, question_id)


def last_answer(store: Store, campaign_id: int, annotator: str) -> int | None:
    """Label of ``annotator``'s latest answer in the current round (what :meth:`Store.undo_last` takes back)."""
    return store.last_answer(campaign_id, annotator)


def item_path(store: Store, campaign_id: int, idx: int) -> str:
    """The stored path of item ``idx`` (KeyError if the campaign has no such item)."""
    return store.item_path(campaign_id, idx)


def round_progress(store: Store, campaign_id: int, annotator: str | None = None) -> dict:
    return store.round_progress(campaign_id, annotator)


def answers_by_round(store: Store, campaign_id: int) -> list[dict]:
    return store.answers_by_round(campaign_id)


def curve_points(store: Store, campaign_id: int, metric: str = "map@20") -> list[dict]:
    """Trained rounds with their answered-pair count and ``metric`` (if evaluated)."""
    return [
        {"round": r.number, "n_labelled": r.n_labelled, metric: (r.metrics or {}).get(metric)}
        for r in store.rounds(campaign_id)
        if r.trained_at is not None
    ]


def curve_svg(points: list[dict], baseline: float | None, metric: str = "map@20") -> str:
    """``metric`` against answered pairs as a standalone SVG (drawn by matplotlib, like the simulate curves)."""
    from rsir.active.plots import curve_svg as render

    return render(points, baseline, metric)
