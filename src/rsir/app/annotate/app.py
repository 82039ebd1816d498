"""The annotation app: people answer ANNEAL's "are these two images similar?" questions in the browser.

Pages: ``/`` (one pair at a time, keyboard shortcuts, zoom, undo) and ``/dashboard`` (answers per round
and annotator, the mAP curve). API (schema at ``/openapi.json``): ``POST /api/next`` claims the caller's
pair, ``POST /api/answer`` stores an answer (idempotent), ``POST /api/undo`` takes the last one back,
``GET /api/me``, ``GET /api/state`` and ``GET /api/dashboard`` read, ``GET /api/images/{idx}`` serves an
item's image. Rounds are trained and selected in a background thread (:mod:`rsir.app.annotate.campaign`).

Who answers: a personal token (``rsir anneal invite``) makes the caller that invited annotator, and
every answer and undo from it is theirs whatever name the body gives (another name: 403). The owner (the
shared token, or anyone on an open loopback server) answers under any name that is not invited; the
dashboard is the owner's.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from rsir.api_campaign import Question, annotator_key
from rsir.app.annotate.campaign import AnnotationCampaign, Closed, check_annotator
from rsir.app.annotate.models import (
    LABEL_NAME,
    LABEL_VALUE,
    Annotator,
    AnnotatorIn,
    AnswerIn,
    AnswerOut,
    DashboardOut,
    ErrorResponse,
    ItemOut,
    MeOut,
    Phase,
    Progress,
    QuestionOut,
    StateOut,
)
from rsir.app.auth import Caller, TokenAuth, caller_of, check_token
from rsir.app.common import BodyLimit, OutsideRoot, ThumbnailCache, default_thumbnail_dir, install_error_handlers

HERE = Path(__file__).resolve().parent.parent  # rsir/app: static/ and templates/ are shared
BROWSER_IMAGES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}
FULL_SIZE = 16384  # "thumbnail" bound for formats a browser cannot show: never shrinks a real scene
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422)}
OWNER_ONLY = "the dashboard is the campaign owner's: open it with the shared token (--token)"
METRIC = "map@20"


def create_annotate_app(
    campaign: AnnotationCampaign, *, token: str | None = None, cache_dir: str | Path | None = None
) -> FastAPI:
    """The app over one campaign; the background round work runs while the app is up (lifespan)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        campaign.start()
        yield
        campaign.stop()

    app = FastAPI(
        title="rsir annotate",
        version="1",
        description="Answer ANNEAL's pair questions: are these two images similar?",
        docs_url=None,  # the bundled docs pages load scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.campaign = campaign
    thumbs = ThumbnailCache(Path(cache_dir) if cache_dir else default_thumbnail_dir())
    install_error_handlers(app)
    _annotator_routes(app, campaign)
    _read_routes(app, campaign, thumbs)
    _pages(app, campaign)
    app.add_middleware(BodyLimit, max_bytes=16 * 1024)
    # always: personal tokens identify invited annotators even on an open loopback server
    if token is not None:
        check_token(token)  # now: middleware is built on the first request
    app.add_middleware(TokenAuth, token=token, personal=campaign.annotator_of)
    return app


# ---------------------------------------------------------------- state


def _question_out(q: Question) -> QuestionOut:
    item = lambda idx: ItemOut(idx=idx, image=f"/api/images/{idx}")  # noqa: E731
    return QuestionOut(id=q.id, round=q.round, a=item(q.item_a), b=item(q.item_b),
                       label=LABEL_NAME.get(q.label) if q.label is not None else None)  # fmt: skip


def _progress(c: AnnotationCampaign, annotator: str | None) -> Progress:
    return c.campaign.progress(annotator)


def _state(c: AnnotationCampaign, annotator: str | None, question: Question | None) -> StateOut:
    progress = _progress(c, annotator)
    phase, message = _phase(c, progress, question)
    return StateOut(campaign=c.name, phase=phase, message=message,
                    question=_question_out(question) if question and phase == "ready" else None,
                    progress=progress)  # fmt: skip


def _phase(c: AnnotationCampaign, p: Progress, question: Question | None) -> tuple[Phase, str]:
    if c.campaign.done:
        return "done", f"The campaign is finished: {p.campaign_answered} pairs answered. Thank you!"
    kind = c.job_kind()
    if kind and c.error and not c.busy:
        return "error", c.error
    if kind == "select":
        return "preparing", "Choosing the first pairs to ask..."
    if kind:
        return "preparing", (f"Round {c.job_round + 1} is complete. Preparing the next round: the model learns "
                             "from your answers and picks the next pairs. This page continues by itself.")  # fmt: skip
    if question is not None or p.pending > p.held_by_others:  # a pair for this annotator (or free to claim)
        return "ready", f"Round {p.round + 1} of {p.rounds_total}: {p.answered} of {p.total} answered"
    if p.pending:
        return "waiting", (f"The last pairs of round {p.round + 1} are with other annotators. Waiting for "
                           "their answers (or for their claims to expire)...")  # fmt: skip
    return "preparing", "Preparing the next round..."


# ---------------------------------------------------------------- routes


def _who(c: AnnotationCampaign, caller: Caller, name: str) -> str:
    """The annotator the caller answers as: a personal token's own name (another name is 403), or for the
    owner the name given, unless it is an invited annotator's (their answers need their token)."""
    if caller.role == "annotator" and caller.name is not None:  # a personal token always names its annotator
        if annotator_key(name) != annotator_key(caller.name):
            raise HTTPException(403, f"this link is {caller.name}'s: it answers as {caller.name} only")
        return caller.name
    _guard(lambda: check_annotator(name))
    invited = c.campaign.invited_name(name)
    if invited is not None:
        raise HTTPException(403, f"{invited} was invited with a personal link: answers as {invited} need it")
    return name


def _annotator_routes(app: FastAPI, c: AnnotationCampaign) -> None:
    @app.get("/api/me", response_model=MeOut, responses=ERRORS, tags=["annotate"])
    def me(request: Request) -> MeOut:
        """Who the caller is: an invited annotator (their name is fixed) or the owner (names themselves)."""
        caller = caller_of(request)
        return MeOut(role=caller.role, annotator=caller.name)

    @app.post("/api/next", response_model=StateOut, responses=ERRORS, tags=["annotate"])
    def next_pair(body: AnnotatorIn, request: Request) -> StateOut:
        """Claim the caller's next pair of the current round (the same one again until answered)."""
        who = _who(c, caller_of(request), body.annotator)
        c.kick()
        question = _guard(lambda: c.next_question(who))
        return _state(c, who, question)

    @app.post("/api/answer", response_model=AnswerOut, responses=ERRORS, tags=["annotate"])
    def answer(body: AnswerIn, request: Request) -> AnswerOut:
        """Store an answer. Sending it twice stores it once; the first annotator to answer a pair wins."""
        who = _who(c, caller_of(request), body.annotator)
        result = _guard(lambda: c.answer(who, body.question_id, LABEL_VALUE[body.label]))
        q, stored = result.question, result.stored
        message = "stored" if stored else f"already answered by {q.annotator}: their answer is kept"
        return AnswerOut(question_id=q.id, label=body.label if stored else LABEL_NAME[q.label],
                         annotator=q.annotator or who, stored=stored, message=message)  # fmt: skip

    @app.post("/api/undo", response_model=StateOut, responses=ERRORS, tags=["annotate"])
    def undo(body: AnnotatorIn, request: Request) -> StateOut:
        """Take back the caller's latest answer of the open round; that pair is shown again."""
        who = _who(c, caller_of(request), body.annotator)
        undone = _guard(lambda: c.undo(who))
        if undone is None:
            raise HTTPException(409, "nothing to undo: you have no answer in the open round")
        state = _state(c, who, undone.question)
        if state.question is not None:
            state.question.label = LABEL_NAME[undone.label]
        return state


def _guard(action):
    """Domain errors of the campaign as HTTP errors with a clear message."""
    try:
        return action()
    except Closed as err:
        raise HTTPException(409, str(err)) from None
    except PermissionError as err:
        raise HTTPException(409, str(err)) from None
    except KeyError as err:
        raise HTTPException(404, str(err.args[0]) if err.args else "not found") from None
    except ValueError as err:
        raise HTTPException(422, str(err)) from None


def _read_routes(app: FastAPI, c: AnnotationCampaign, thumbs: ThumbnailCache) -> None:
    @app.get("/api/state", response_model=StateOut, responses=ERRORS, tags=["annotate"])
    def state(request: Request, annotator: Annotated[Annotator | None, Query()] = None) -> StateOut:
        """Phase and progress of the campaign (claims nothing); with ``annotator``, checks the caller may
        answer under that name."""
        if annotator is not None:
            annotator = _who(c, caller_of(request), annotator)
        c.kick()
        return _state(c, annotator, None)

    @app.get("/api/dashboard", response_model=DashboardOut, responses=ERRORS, tags=["dashboard"])
    def dashboard(request: Request) -> DashboardOut:
        """Answers per round and annotator, and the retrieval metric after each trained round (owner only)."""
        _owner(request)
        return DashboardOut(**asdict(c.campaign.stats(METRIC)))

    @app.get("/api/dashboard/curve.svg", tags=["dashboard"], responses={200: {"content": {"image/svg+xml": {}}}})
    def curve(request: Request) -> Response:
        """The mAP curve (map@20 of the test queries against answered pairs) as SVG (owner only)."""
        _owner(request)
        svg = c.campaign.curve_svg(METRIC)
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @app.get("/api/images/{idx}", response_class=FileResponse, responses=ERRORS, tags=["annotate"])
    def image(idx: Annotated[int, PathParam(ge=0, le=2**31)]) -> FileResponse:
        """Item ``idx``'s image at full resolution (formats a browser cannot show come as JPEG)."""
        from rsir.data.items import ImageError

        try:
            source = c.image_path(idx)
        except KeyError:
            raise HTTPException(404, f"no item {idx} in this campaign") from None
        except OutsideRoot:
            raise HTTPException(403, "the item's file lies outside the archive root") from None
        if not source.exists():
            raise HTTPException(404, "the item's file is missing from the archive")
        headers = {"Cache-Control": "private, max-age=3600"}
        if source.is_file() and source.suffix.lower() in BROWSER_IMAGES:
            return FileResponse(source, headers=headers)
        try:
            return FileResponse(thumbs.get(source, FULL_SIZE), media_type="image/jpeg", headers=headers)
        except ImageError as err:
            raise HTTPException(422, f"cannot render the item: {getattr(err, 'reason', 'unreadable')}") from None


def _pages(app: FastAPI, c: AnnotationCampaign) -> None:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(name: str) -> HTMLResponse:
        s = c.campaign.settings
        html = templates.get_template(name).render(
            campaign=c.name, strategy=s.strategy, initial=s.initial, per_round=s.per_round, rounds_total=s.rounds + 1
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/healthz", tags=["service"])
    def health() -> dict:
        return {"status": "ok", "campaign": c.name}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> HTMLResponse:
        return page("annotate.html")

    @app.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def dashboard_page(request: Request) -> HTMLResponse:
        _owner(request)
        return page("annotate_dashboard.html")


def _owner(request: Request) -> None:
    if caller_of(request).role != "owner":
        raise HTTPException(403, OWNER_ONLY)
