"""The state the search routes share (galleries, thumbnail cache, limits) and the small helpers they use."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from fastapi import HTTPException
from fastapi.responses import FileResponse

from rsir.app.common import THUMB_SIZES, OutsideRoot, ThumbnailCache, safe_path
from rsir.app.search.models import CaptionHit, Hit, QueryInfo, SearchResponse

NO_ITSR = "text and pair search need a text-ITSR model: start the server with `rsir serve INDEX --itsr CKPT`"
NO_SCENE_TEXT = "text search over scenes needs a text model: start the server with `rsir serve INDEX --text-model CKPT`"


class SearchService:
    """What the routes share: the galleries, the thumbnail cache and the limits."""

    def __init__(self, scenes, pairs, thumbs: ThumbnailCache, max_upload: int, max_pixels: int) -> None:
        self.scenes, self.pairs, self.thumbs, self.max_upload = scenes, pairs, thumbs, max_upload
        self.max_pixels = max_pixels
        self.scene_text = None  # rsir.text.search.SceneTextSearch when served with --text-model

    def need_pairs(self):
        if self.pairs is None:
            raise HTTPException(409, NO_ITSR)
        return self.pairs

    def scene_row(self, item_id: str) -> int:
        try:
            return self.scenes.row_of(item_id)
        except KeyError:
            raise HTTPException(404, f"unknown item id {item_id!r}") from None

    def pair_row(self, pair_id: str) -> int:
        try:
            return self.need_pairs().row_of(pair_id)
        except KeyError:
            raise HTTPException(404, f"unknown pair id {pair_id!r}") from None

    def pair(self, pair_id: str):
        """The gallery pair ``pair_id`` (409 without a text-ITSR model, 404 when unknown)."""
        row = self.pair_row(pair_id)  # first: it answers 409 when there is no pair gallery at all
        return self.pairs.pairs[row]

    def scene_hit(self, rank: int, row: int, score: float) -> Hit:
        item_id = self.scenes.manifest.ids[row]
        return Hit(
            rank=rank,
            id=item_id,
            score=score,
            kind="scene",
            labels=list(self.scenes.manifest.labels[row]),
            thumbnails=[thumb_url("scene", item_id)],
        )

    def pair_hit(self, rank: int, row: int, score: float) -> Hit:
        p = self.pairs.pairs[row]
        urls = [thumb_url("pair", p.id, side=s) for s in ("before", "after")]
        return Hit(
            rank=rank, id=p.id, score=score, kind="pair", thumbnails=urls, captions=list(p.captions), changed=p.changed
        )

    def thumbnail(self, root: Path, path: str | Path, size: int) -> FileResponse:
        from rsir.data.items import ImageError

        if size not in THUMB_SIZES:
            raise HTTPException(422, f"size: must be one of {', '.join(map(str, THUMB_SIZES))}")

        try:
            source = safe_path(root, path)
        except OutsideRoot:
            raise HTTPException(403, "the item's file lies outside the archive root") from None
        if not source.exists():
            raise HTTPException(404, "the item's file is missing from the archive")
        try:
            out = self.thumbs.get(source, size)
        except ImageError as err:
            raise HTTPException(422, f"cannot render the item: {getattr(err, 'reason', 'unreadable')}") from None
        return FileResponse(out, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


def thumb_url(kind: str, item_id: str, size: int = 256, side: str | None = None) -> str:
    params = {"id": item_id, "size": size} | ({"side": side} if side else {})
    return f"/api/thumbnails/{kind}?{urlencode(params)}"


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        w, s, e, n = (float(v) for v in value.split(","))
    except ValueError:
        raise HTTPException(422, "bbox: expected four numbers 'west,south,east,north' in degrees") from None
    if not all(np.isfinite([w, s, e, n])) or s > n or w > e:
        raise HTTPException(422, "bbox: needs finite west <= east and south <= north")
    return w, s, e, n


def page_of(kind, value, gallery, total, offset, k, hits, started, captions=()) -> SearchResponse:
    return SearchResponse(
        query=QueryInfo(kind=kind, value=value),
        gallery=gallery,
        total=total,
        offset=offset,
        k=k,
        hits=hits,
        captions=[CaptionHit(rank=i + 1, caption=c, score=s, pair=p) for i, (c, s, p) in enumerate(captions)],
        took_ms=round(1000 * (time.perf_counter() - started), 3),
    )
