"""The search service: a FastAPI app over one scene index and, optionally, a text-ITSR pair gallery.

Endpoints (all documented in /openapi.json): search by uploaded image, by item id, by text, by uploaded
before/after pair or by pair id; item and pair details; cached thumbnails; the web page at ``/``.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from rsir.app.auth import check_token
from rsir.app.common import (
    DEFAULT_UPLOAD_PIXELS,
    BodyLimit,
    ThumbnailCache,
    TokenAuth,
    decode_upload,
    default_thumbnail_dir,
    install_error_handlers,
    read_upload,
    require_multipart,
)
from rsir.app.search.models import (
    ErrorResponse,
    Filters,
    InfoResponse,
    ItemDetail,
    LabelCount,
    PairDetail,
    SearchResponse,
)
from rsir.app.search.service import NO_SCENE_TEXT, SearchService, page_of, parse_bbox, thumb_url

HERE = Path(__file__).resolve().parent.parent  # rsir/app: static/ and templates/ are shared
MAX_K = 1000
MAX_OFFSET = 100_000
DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024

K = Annotated[int, Query(ge=1, le=MAX_K, description="results per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="results to skip (paging)")]
ItemId = Annotated[str, Query(min_length=1, max_length=1000, description="archive item id")]
Changed = Annotated[bool | None, Query(description="keep only changed (true) or unchanged (false) pairs")]
Size = Annotated[int, Query(description="longest side in pixels: 128, 256 or 512")]
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 415, 422)}
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "JPEG thumbnail"}}


def create_search_app(
    index_dir: str | Path,
    itsr_ckpt: str | Path | None = None,
    *,
    itsr_data: str | Path | None = None,
    itsr_split: str = "test",
    text_model: str | Path | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    max_upload_pixels: int = DEFAULT_UPLOAD_PIXELS,
    warm: bool = False,
    runtime: str = "auto",
) -> FastAPI:
    """The search app over INDEX_DIR (+ a text-ITSR checkpoint); with ``token``, every request must carry it.
    Uploads larger than ``max_upload_bytes`` or with more than ``max_upload_pixels`` pixels get 413.
    ``text_model`` (a `rsir text train` checkpoint) makes text queries search the scenes of the index.
    ``runtime`` runs the query encoder (rsir.models.runtime). ``warm`` loads the image encoder for uploads in
    the background right away instead of on first use."""
    from rsir.app.search.scenes import SceneGallery

    scenes = SceneGallery(index_dir, runtime)
    if warm:
        scenes.warm_up()
    pairs = None
    if itsr_ckpt is not None:
        from rsir.app.search.pairs import PairGallery

        pairs = PairGallery(itsr_ckpt, itsr_data, itsr_split)
    thumbs = ThumbnailCache(Path(cache_dir) if cache_dir else default_thumbnail_dir())
    svc = SearchService(scenes, pairs, thumbs, max_upload_bytes, max_upload_pixels)
    if text_model is not None:
        svc.scene_text = scenes.api.text_model(text_model)
    app = FastAPI(
        title="rsir search",
        version="1",
        description="Search a remote-sensing archive by image, item id, text or before/after pair.",
        docs_url=None,  # the bundled docs pages load their scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.state.service = svc
    install_error_handlers(app)
    _scene_routes(app, svc)
    _pair_routes(app, svc)
    _page_routes(app, svc)
    app.add_middleware(BodyLimit, max_bytes=2 * max_upload_bytes + 64 * 1024)
    if token is not None:  # an empty or blank one is refused, not taken for "no token"
        check_token(token)  # now: middleware is built on the first request
        app.add_middleware(TokenAuth, token=token)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings come from RSIR_SERVE_* (set by `rsir serve`)."""
    import faiss

    # Exact search runs query by query below this batch size, through BLAS above it; for the batches the
    # SceneGallery's batcher forms, BLAS is ~6x faster per query (100k x 1280). A process-wide setting,
    # so it is made here, in the server's own process, and not by the library.
    faiss.cvar.distance_compute_blas_threshold = 2
    env = lambda key: os.environ.get(f"RSIR_SERVE_{key}") or None  # noqa: E731
    return create_search_app(
        env("INDEX"),
        env("ITSR"),
        itsr_data=env("ITSR_DATA"),
        itsr_split=env("ITSR_SPLIT") or "test",
        text_model=env("TEXT_MODEL"),
        token=env("TOKEN"),
        cache_dir=env("CACHE"),
        max_upload_bytes=int(env("MAX_UPLOAD") or DEFAULT_MAX_UPLOAD),
        max_upload_pixels=int(env("MAX_PIXELS") or DEFAULT_UPLOAD_PIXELS),
        runtime=env("RUNTIME") or "auto",
        warm=True,
    )


def _filters_dependency(svc: SearchService):
    def filters(
        label: Annotated[list[str], Query(description="keep items with any of these class labels")] = [],  # noqa: B006
        date_from: Annotated[date | None, Query(description="keep items dated on or after (meta.date)")] = None,
        date_to: Annotated[date | None, Query(description="keep items dated on or before (meta.date)")] = None,
        bbox: Annotated[
            str | None, Query(max_length=200, description="'west,south,east,north': items whose meta.bbox meets it")
        ] = None,
    ) -> Filters:
        unknown = [lab for lab in label if not svc.scenes.has_label(lab)]
        if unknown:
            raise HTTPException(422, f"label: unknown label(s) {unknown[:5]}; see /api/info for the labels")
        return Filters(tuple(sorted(set(label))), date_from, date_to, parse_bbox(bbox))

    return filters


def _scene_routes(app: FastAPI, svc: SearchService) -> None:
    filters = _filters_dependency(svc)

    def page(kind, value, query, f: Filters, offset: int, k: int, started: float, exclude=None) -> SearchResponse:
        from rsir.index.store import StoreUnavailable

        try:
            total, ranked = svc.scenes.ranked(query, f, offset, k, exclude_row=exclude)
        except StoreUnavailable as err:  # e.g. the Milvus server is down: the service itself is fine
            raise HTTPException(503, str(err)) from None
        except ValueError as err:  # a request the store refuses (a Milvus page past rank 16,384)
            raise HTTPException(422, str(err)) from None
        hits = [svc.scene_hit(offset + i + 1, row, score) for i, (row, score) in enumerate(ranked)]
        return page_of(kind, value, "scenes", total, offset, k, hits, started)

    @app.get("/api/search/id", response_model=SearchResponse, responses=ERRORS, tags=["search"])
    def search_by_id(
        id: ItemId, k: K = 10, offset: Offset = 0, include_self: bool = False, f: Filters = Depends(filters)
    ) -> SearchResponse:
        """Scenes most similar to an archive item ("more like this"); the item itself is left out by default."""
        started = time.perf_counter()
        row = svc.scene_row(id)
        exclude = None if include_self else row
        return page("id", id, svc.scenes.vector_of(row), f, offset, k, started, exclude)

    @app.post(
        "/api/search/image",
        response_model=SearchResponse,
        responses=ERRORS,
        tags=["search"],
        dependencies=[Depends(require_multipart)],
    )
    def search_by_image(
        file: Annotated[UploadFile, File(description="query image: JPEG, PNG, BMP or (Geo)TIFF")],
        k: K = 10,
        offset: Offset = 0,
        f: Filters = Depends(filters),
    ) -> SearchResponse:
        """Scenes most similar to an uploaded image, embedded exactly as the index was."""
        started = time.perf_counter()
        image = decode_upload(read_upload(file, svc.max_upload), max_pixels=svc.max_pixels)
        return page("image", None, svc.scenes.embed(image), f, offset, k, started)

    @app.get("/api/items", response_model=ItemDetail, responses=ERRORS, tags=["items"])
    def item(id: ItemId) -> ItemDetail:
        """An archive item's labels and metadata."""
        row = svc.scene_row(id)
        return ItemDetail(
            id=id,
            labels=list(svc.scenes.manifest.labels[row]),
            path=svc.scenes.relative_path(row),
            meta=svc.scenes.meta[row],
            thumbnail=thumb_url("scene", id),
            preview=thumb_url("scene", id, 512),
        )

    @app.get("/api/thumbnails/scene", response_class=FileResponse, responses=ERRORS | JPEG, tags=["items"])
    def scene_thumbnail(id: ItemId, size: Size = 256) -> FileResponse:
        """JPEG thumbnail of an archive item (rendered once, then served from the cache)."""
        row = svc.scene_row(id)
        return svc.thumbnail(svc.scenes.root, svc.scenes.manifest.paths[row], size)


def _pair_routes(app: FastAPI, svc: SearchService) -> None:
    filters = _filters_dependency(svc)

    def scene_text_page(q: str, f: Filters, offset: int, k: int, started: float) -> SearchResponse:
        total, ranked = svc.scene_text.page(q, f, offset, k)
        hits = [svc.scene_hit(offset + i + 1, row, score) for i, (row, score) in enumerate(ranked)]
        return page_of("text", q, "scenes", total, offset, k, hits, started)

    def page(kind, value, query, offset, k, changed, started, exclude=None, captions=()) -> SearchResponse:
        total, ranked = svc.pairs.ranked(query, offset, k, changed, exclude)
        hits = [svc.pair_hit(offset + i + 1, row, score) for i, (row, score) in enumerate(ranked)]
        return page_of(kind, value, "pairs", total, offset, k, hits, started, captions)

    @app.get("/api/search/text", response_model=SearchResponse, responses=ERRORS, tags=["search"])
    def search_by_text(
        q: Annotated[str, Query(min_length=1, max_length=500, description="a sentence describing scenes or a change")],
        k: K = 10,
        offset: Offset = 0,
        changed: Changed = None,
        gallery: Annotated[
            Literal["scenes", "pairs"] | None,
            Query(description="scenes (needs --text-model) or pairs (needs --itsr); default: scenes when loaded"),
        ] = None,
        f: Filters = Depends(filters),
    ) -> SearchResponse:
        """Scenes of the index (with a text <-> scene model) or before/after pairs (with a text-ITSR model)
        that best match a sentence; scene results take the same filters as image queries."""
        started = time.perf_counter()
        if not q.strip():
            raise HTTPException(422, "q: the text is blank")
        if gallery == "scenes" or (gallery is None and svc.scene_text is not None):
            if svc.scene_text is None:
                raise HTTPException(409, NO_SCENE_TEXT)
            return scene_text_page(q, f, offset, k, started)
        pairs = svc.need_pairs()
        return page("text", q, pairs.text_vector(q), offset, k, changed, started)

    @app.post(
        "/api/search/pair",
        response_model=SearchResponse,
        responses=ERRORS,
        tags=["search"],
        dependencies=[Depends(require_multipart)],
    )
    def search_by_pair(
        before: Annotated[UploadFile, File(description="the earlier image")],
        after: Annotated[UploadFile, File(description="the later image")],
        k: K = 10,
        offset: Offset = 0,
        changed: Changed = None,
    ) -> SearchResponse:
        """Gallery pairs most similar to an uploaded before/after pair, plus the captions that fit it best."""
        started = time.perf_counter()
        pairs = svc.need_pairs()
        uploads = ((before, "before"), (after, "after"))
        images = [decode_upload(read_upload(u, svc.max_upload, name), name, svc.max_pixels) for u, name in uploads]
        q = pairs.pair_vector(*images)
        return page("pair", None, q, offset, k, changed, started, captions=pairs.top_captions(q))

    @app.get("/api/search/pair-id", response_model=SearchResponse, responses=ERRORS, tags=["search"])
    def search_by_pair_id(
        id: ItemId, k: K = 10, offset: Offset = 0, changed: Changed = None, include_self: bool = False
    ) -> SearchResponse:
        """Gallery pairs most similar to a gallery pair ("more like this" for pairs)."""
        started = time.perf_counter()
        row = svc.pair_row(id)
        q = svc.pairs.pair_emb[row]
        exclude = None if include_self else row
        return page("pair-id", id, q, offset, k, changed, started, exclude, svc.pairs.top_captions(q))

    @app.get("/api/pairs", response_model=PairDetail, responses=ERRORS, tags=["items"])
    def pair(id: ItemId) -> PairDetail:
        """A gallery pair's captions and change flag."""
        p = svc.pair(id)
        sides = ("before", "after")
        return PairDetail(
            id=p.id,
            captions=list(p.captions),
            changed=p.changed,
            split=p.split,
            thumbnails=[thumb_url("pair", p.id, side=s) for s in sides],
            previews=[thumb_url("pair", p.id, 512, side=s) for s in sides],
        )

    @app.get("/api/thumbnails/pair", response_class=FileResponse, responses=ERRORS | JPEG, tags=["items"])
    def pair_thumbnail(id: ItemId, side: Literal["before", "after"], size: Size = 256) -> FileResponse:
        """JPEG thumbnail of one side of a gallery pair."""
        p = svc.pair(id)
        return svc.thumbnail(svc.pairs.root, p.before if side == "before" else p.after, size)


def _page_routes(app: FastAPI, svc: SearchService) -> None:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/api/info", response_model=InfoResponse, responses=ERRORS, tags=["service"])
    def info() -> InfoResponse:
        """What this server searches: index size, encoder, labels, available filters, text search."""
        m = svc.scenes.manifest
        return InfoResponse(
            items=len(svc.scenes),
            encoder=m.encoder,
            head=Path(m.head).name if m.head else None,
            index_type=m.index_type,
            dim=m.dim,
            labels=[LabelCount(label=lab, count=n) for lab, n in svc.scenes.label_counts()],
            filters=svc.scenes.available_filters(),
            text_search=svc.pairs is not None,
            scene_text_search=svc.scene_text is not None,
            pairs=len(svc.pairs) if svc.pairs is not None else 0,
            max_k=MAX_K,
            max_upload_bytes=svc.max_upload,
            max_upload_pixels=svc.max_pixels,
        )

    @app.get("/healthz", tags=["service"])
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> HTMLResponse:
        page = templates.get_template("search.html").render(
            items=len(svc.scenes),
            text_search=svc.pairs is not None,
            scene_text=svc.scene_text is not None,
            archive=Path(svc.scenes.root).name,
        )
        return HTMLResponse(page)
