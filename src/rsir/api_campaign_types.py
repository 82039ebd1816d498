"""Public API, one ANNEAL campaign: the typed results of :class:`rsir.api_campaign.Campaign`, its options and
errors, and the annotator-name rules (declarations the annotation app and the CLI share)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rsir.active.annotators import MAX_NAME as ANNOTATOR_NAME_MAX
from rsir.active.annotators import NAME_PATTERN as ANNOTATOR_NAME_PATTERN
from rsir.active.annotators import check_name as check_annotator
from rsir.active.annotators import name_key as annotator_key
from rsir.active.store import CampaignMismatch, Question

__all__ = [
    "ANNOTATOR_NAME_MAX", "ANNOTATOR_NAME_PATTERN", "AnswerResult", "AnnotatorRound", "CampaignMismatch",
    "CampaignOptions", "CampaignStats", "Closed", "CurvePoint", "DEFAULTS", "NO_SPLIT", "Progress", "Question",
    "Undone", "annotator_key", "check_annotator",
]  # fmt: skip

NO_SPLIT = "none"


class Closed(RuntimeError):
    """The round is closing (being trained on) or the campaign is finished: no more changes."""


@dataclass(frozen=True)
class CampaignOptions:
    """A campaign's settings as given; ``None`` = the stored campaign's value (resuming), or the default."""

    strategy: str | None = None
    seed: int | None = None
    initial: int | None = None
    per_round: int | None = None
    rounds: int | None = None
    steps: int | None = None  # optimiser steps per round (None: the learner's default)
    closure: float | None = None  # weight of the pairs answers imply (None: the learner's default)
    groups: float | None = None  # weight of the group objective (None: the learner's default)
    split: str | None = None  # "none": no test queries (no mAP curve)
    encoder: str | None = None


DEFAULTS = CampaignOptions(strategy="default", seed=0, initial=100, per_round=100, rounds=10, split="holdout:0.2")


@dataclass(frozen=True)
class AnswerResult:
    """The question after an answer; ``stored``: False when another annotator's answer came first (kept)."""

    question: Question
    stored: bool


@dataclass(frozen=True)
class Undone:
    """The pair an undo took back (the annotator's current pair again) and the label it had."""

    question: Question
    label: int


@dataclass(frozen=True)
class Progress:
    """Counts of the current round (``mine``: the given annotator's answers) and of the whole campaign."""

    round: int
    rounds_total: int
    total: int
    answered: int
    similar: int
    dissimilar: int
    skipped: int
    mine: int
    held_by_others: int
    pending: int
    campaign_answered: int


@dataclass(frozen=True)
class AnnotatorRound:
    round: int
    annotator: str
    answers: int
    similar: int
    dissimilar: int
    skipped: int
    first: datetime
    last: datetime


@dataclass(frozen=True)
class CurvePoint:
    round: int
    n_labelled: int
    value: float | None


@dataclass(frozen=True)
class CampaignStats:
    """The dashboard: answers per round and annotator, ``metric`` after each trained round (None: no split)."""

    campaign: str
    strategy: str
    status: str
    current_round: int
    rounds_total: int
    per_round: int
    metric: str | None
    baseline: float | None
    curve: list[CurvePoint]
    answers: list[AnnotatorRound]
