"""`rsir anneal serve`: the web app where people answer a campaign's pair questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsir.cli.runtime import Runtime

DEFAULT_DB = "anneal.db"


def serve(
    archive: Annotated[Path, typer.Argument(help="image archive (scene folders, BigEarthNet or a folder of images)")],
    campaign: Annotated[str, typer.Option("--campaign", help="campaign name: created, or resumed if it exists")],
    db: Annotated[
        str, typer.Option(help="SQLite file, or a URL such as postgresql+psycopg://user@host/db")
    ] = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback needs --token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar="RSIR_TOKEN", help="shared secret every request must carry (header, cookie or ?token=)"),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="selection strategy (new campaign; default: `default`, the best measured)")
    ] = None,
    initial: Annotated[int | None, typer.Option(min=1, help="pairs in the first round (default 100)")] = None,
    per_round: Annotated[int | None, typer.Option(min=1, help="pairs per later round (default 100)")] = None,
    rounds: Annotated[int | None, typer.Option(min=0, help="rounds after the first (default 10)")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="training steps per round (default: the learner's)")] = None,
    closure: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="weight of the pairs answers imply by transitivity (0: off; default: the learner's)"
        ),
    ] = None,
    groups: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="weight of the group objective on the groups answers join (0: off; default: the learner's)"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the split and the selection (default 0)")] = None,
    split: Annotated[
        str | None, typer.Option(help="test queries for the mAP curve, e.g. holdout:0.2 (labelled archives)")
    ] = None,
    encoder: Annotated[str | None, typer.Option(help="image encoder (default: the rsir default)")] = None,
    claim_minutes: Annotated[
        float, typer.Option(min=0.1, help="a pair shown to someone is theirs this long, then free again")
    ] = 5.0,
    cache_dir: Annotated[Path | None, typer.Option(help="image cache (default $RSIR_CACHE/thumbs)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    runtime: Runtime = "auto",
) -> None:
    """Serve campaign NAME on ARCHIVE: people answer "are these two images similar?" in the browser;
    each complete round trains the model and selects the next in the background. Options left out
    on a resumed campaign keep its stored values; ones given must agree with them."""
    from rsir.cli.serve import port_or_exit, serving_or_exit

    serving_or_exit(host, token, runtime)
    port_or_exit(host, port)  # before the archive is embedded
    _check_options(strategy, split, encoder)
    app = _build_app(archive, campaign, db, token, cache_dir, claim_minutes, locals())
    import logging

    import uvicorn

    from rsir.app.auth import uvicorn_log_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")

    typer.echo(f"rsir annotate: campaign {campaign!r} on http://{host}:{port}/ (dashboard /dashboard, db {_shown(db)})")
    uvicorn.run(app, host=host, port=port, log_level=log_level, log_config=uvicorn_log_config(), proxy_headers=False)


def _check_options(strategy: str | None, split: str | None, encoder: str | None) -> None:
    from rsir.cli import validate
    from rsir.cli.common import user_errors

    with user_errors():
        if strategy is not None:
            from rsir.active.strategies import strategy_names

            validate.choice("--strategy", strategy, strategy_names(), "strategy")
        if split is not None:
            validate.split(split)
        validate.encoder(encoder)


def _build_app(archive: Path, name: str, db: str, token, cache_dir, claim_minutes: float, given: dict):
    from sqlalchemy.exc import SQLAlchemyError

    from rsir.active.store import CampaignMismatch
    from rsir.app.annotate import create_annotate_app
    from rsir.app.annotate.campaign import AnnotationCampaign, ServeOptions
    from rsir.cli.common import open_archive_or_exit, user_errors

    options = ServeOptions(**{k: given[k] for k in ServeOptions.__dataclass_fields__})
    with user_errors():
        try:
            arch = open_archive_or_exit(archive, strict=False)
            if not len(arch):
                raise ValueError(f"no readable images in {archive}")
            typer.echo(f"{len(arch)} images in {archive}; embedding them (cached after the first time)...", err=True)
            campaign = AnnotationCampaign.open(arch, db, name, options, progress=True,
                                               claim_seconds=claim_minutes * 60, runtime=given["runtime"])  # fmt: skip
        except CampaignMismatch as err:
            raise ValueError(str(err)) from None
        except SQLAlchemyError as err:
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            raise ValueError(f"cannot use the campaign database {_shown(db)}: {reason}") from None
    return create_annotate_app(campaign, token=token, cache_dir=cache_dir)


def _shown(db: str) -> str:
    """The database URL without its password."""
    if "://" not in db:
        return db
    from sqlalchemy.engine import make_url

    try:
        return make_url(db).render_as_string(hide_password=True)
    except Exception:
        return db.split("://", 1)[0] + "://..."


def invite(
    campaign: Annotated[str, typer.Argument(help="campaign name, as given to `rsir anneal serve --campaign`")],
    name: Annotated[str, typer.Argument(help="the annotator's name: every answer through the link is stored so")],
    db: Annotated[
        str, typer.Option(help="SQLite file, or a URL such as postgresql+psycopg://user@host/db")
    ] = DEFAULT_DB,
    url: Annotated[str, typer.Option(help="the server's address as annotators reach it")] = "http://127.0.0.1:8000",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Invite NAME to CAMPAIGN: prints a personal link (its token is shown once; the database keeps only a
    hash). Answers and undo through it are bound to NAME; no one else may answer under that name. Inviting
    NAME again makes a new link and the old one stops working."""
    from sqlalchemy.exc import SQLAlchemyError

    from rsir import api
    from rsir.cli.common import emit, user_errors

    with user_errors():
        try:
            token = api.invite_annotator(db, campaign, name)
        except LookupError:
            raise ValueError(f"no campaign {campaign!r} in {_shown(db)}: start it with `rsir anneal serve`") from None
        except SQLAlchemyError as err:
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            raise ValueError(f"cannot use the campaign database {_shown(db)}: {reason}") from None
    link = f"{url.rstrip('/')}/?token={token}"
    out = {"campaign": campaign, "annotator": name.strip(), "token": token, "link": link}
    emit(out, as_json, lambda o: f"invite for {o['annotator']} on campaign {o['campaign']!r} (shown once):\n{link}")
