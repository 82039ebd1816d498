"""Request and response bodies of the annotation API (validated by pydantic: bad input is a clear 422)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rsir.api_campaign import ANNOTATOR_NAME_MAX as MAX_NAME
from rsir.api_campaign import ANNOTATOR_NAME_PATTERN as NAME_PATTERN
from rsir.api_campaign import AnnotatorRound as AnswerRow  # the API's dataclasses are the response shapes too
from rsir.api_campaign import CurvePoint, Progress

Annotator = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN),
    Field(description="who answers: a name of letters, digits, spaces and . @ + -", examples=["alice"]),
]
LabelName = Literal["similar", "dissimilar", "skip"]
LABEL_VALUE: dict[LabelName, int] = {"similar": 1, "dissimilar": 0, "skip": -1}
LABEL_NAME: dict[int, LabelName] = {v: k for k, v in LABEL_VALUE.items()}
Phase = Literal["ready", "waiting", "preparing", "done", "error"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnnotatorIn(Strict):
    annotator: Annotator


class AnswerIn(Strict):
    annotator: Annotator
    question_id: int = Field(ge=1, le=2**62, description="id of the pair being answered")
    label: LabelName


class MeOut(BaseModel):
    role: Literal["owner", "annotator"] = Field(description="annotator: a personal token (rsir anneal invite)")
    annotator: str | None = Field(description="the invited annotator's name (answers are stored under it)")


class ErrorResponse(BaseModel):
    detail: str


class ItemOut(BaseModel):
    idx: int
    image: str = Field(description="URL of the image at full resolution")


class QuestionOut(BaseModel):
    id: int
    round: int
    a: ItemOut
    b: ItemOut
    label: LabelName | None = Field(None, description="the answer it has (after an undo: the one taken back)")


class StateOut(BaseModel):
    campaign: str
    phase: Phase
    message: str
    question: QuestionOut | None
    progress: Progress


class AnswerOut(BaseModel):
    question_id: int
    label: LabelName
    annotator: str
    stored: bool = Field(description="false when someone else had answered this pair first (theirs is kept)")
    message: str


class DashboardOut(BaseModel):
    campaign: str
    strategy: str
    status: str
    current_round: int
    rounds_total: int
    per_round: int
    metric: str | None = Field(description="the retrieval metric of the curve; null without test labels")
    baseline: float | None = Field(description="the metric with no training (the encoder's own space)")
    curve: list[CurvePoint]
    answers: list[AnswerRow]
