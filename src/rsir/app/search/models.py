"""Request filters and response models of the search API (they document /openapi.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from rsir.index.filters import Filters  # noqa: F401  (the service's filters are the index's own)

QueryKind = Literal["image", "id", "text", "pair", "pair-id"]


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong with the request, in one sentence")


class Hit(BaseModel):
    rank: int = Field(description="1-based rank over the whole result list (offset included)")
    id: str
    score: float = Field(description="cosine similarity to the query")
    kind: Literal["scene", "pair"]
    labels: list[str] = Field(default_factory=list, description="class labels of a scene")
    thumbnails: list[str] = Field(description="thumbnail URLs: one for a scene, [before, after] for a pair")
    captions: list[str] = Field(default_factory=list, description="captions of a pair")
    changed: bool | None = Field(None, description="whether a pair shows a change")


class CaptionHit(BaseModel):
    rank: int
    caption: str
    score: float
    pair: str = Field(description="id of the pair this caption describes")


class QueryInfo(BaseModel):
    kind: QueryKind
    value: str | None = Field(None, description="the id or text searched for; null for uploads")


class SearchResponse(BaseModel):
    query: QueryInfo
    gallery: Literal["scenes", "pairs"]
    total: int = Field(description="items of the gallery that pass the filters (the query item excluded)")
    offset: int
    k: int
    hits: list[Hit]
    captions: list[CaptionHit] = Field(
        default_factory=list, description="for pair queries: the gallery captions closest to the query pair"
    )
    took_ms: float


class LabelCount(BaseModel):
    label: str
    count: int


class InfoResponse(BaseModel):
    items: int
    encoder: str
    head: str | None
    index_type: str
    dim: int
    labels: list[LabelCount]
    filters: list[str] = Field(description="metadata filters this index can use: label, date, bbox")
    text_search: bool = Field(description="a text-ITSR model is loaded: text and pair search work")
    scene_text_search: bool = Field(False, description="a text <-> scene model is loaded: text queries find scenes")
    pairs: int = Field(0, description="pairs in the text-ITSR gallery")
    max_k: int
    max_upload_bytes: int
    max_upload_pixels: int


class ItemDetail(BaseModel):
    id: str
    labels: list[str]
    path: str = Field(description="path relative to the archive root")
    meta: dict
    thumbnail: str
    preview: str = Field(description="larger rendering of the image")


class PairDetail(BaseModel):
    id: str
    captions: list[str]
    changed: bool
    split: str
    thumbnails: list[str] = Field(description="[before, after]")
    previews: list[str] = Field(description="larger [before, after]")
