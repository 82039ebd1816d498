"""`rsir serve`: the search service and its web page (FastAPI under uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from rsir.cli.runtime import Runtime

# Settings reach uvicorn's worker processes through the environment (workers re-import the app factory).
ENV_PREFIX = "RSIR_SERVE_"


def serve(
    index_dir: Annotated[Path, typer.Argument(help="index folder made by `rsir index`")],
    itsr: Annotated[
        Path | None, typer.Option("--itsr", help="text-ITSR checkpoint: enables text and before/after pair search")
    ] = None,
    itsr_data: Annotated[
        Path | None, typer.Option(help="change-caption dataset of the pair gallery (default: the checkpoint's)")
    ] = None,
    itsr_split: Annotated[str, typer.Option(help="split of that dataset used as the pair gallery")] = "test",
    text_model: Annotated[
        Path | None, typer.Option(help="text <-> scene checkpoint (`rsir text train`): text queries find scenes")
    ] = None,
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback needs --token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
    token: Annotated[
        str | None,
        typer.Option(envvar="RSIR_TOKEN", help="shared secret every request must carry (header, cookie or ?token=)"),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.1, help="largest accepted upload per file")] = 20.0,
    max_upload_megapixels: Annotated[
        float, typer.Option(min=0.01, help="largest accepted upload in pixels (checked from its header)")
    ] = 25.0,
    cache_dir: Annotated[Path | None, typer.Option(help="thumbnail cache (default $RSIR_CACHE/thumbs)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    runtime: Runtime = "auto",
) -> None:
    """Serve INDEX_DIR over HTTP: search by image, item id, text or before/after pair; web page at /."""
    serving_or_exit(host, token, runtime)
    if not (Path(index_dir) / "manifest.json").is_file():
        typer.echo(f"error: {index_dir} is not an rsir index (no manifest.json); build one with `rsir index`", err=True)
        raise typer.Exit(2)
    if itsr is not None and not Path(itsr).is_dir():
        typer.echo(f"error: ITSR checkpoint not found: {itsr}", err=True)
        raise typer.Exit(2)
    port_or_exit(host, port)
    if text_model is not None and not (Path(text_model) / "manifest.json").is_file():
        typer.echo(f"error: text model not found: {text_model} (a `rsir text train` checkpoint folder)", err=True)
        raise typer.Exit(2)
    settings = {
        "INDEX": str(Path(index_dir).resolve()),
        "ITSR": str(Path(itsr).resolve()) if itsr else "",
        "ITSR_DATA": str(Path(itsr_data).resolve()) if itsr_data else "",
        "ITSR_SPLIT": itsr_split,
        "TEXT_MODEL": str(Path(text_model).resolve()) if text_model else "",
        "TOKEN": token or "",
        "MAX_UPLOAD": str(int(max_upload_mb * 1024 * 1024)),
        "MAX_PIXELS": str(int(max_upload_megapixels * 1_000_000)),
        "RUNTIME": runtime,
        "CACHE": str(Path(cache_dir).resolve()) if cache_dir else "",
    }
    for key, value in settings.items():
        os.environ[ENV_PREFIX + key] = value
    # Requests already run in parallel (threads, workers): OpenMP teams inside each FAISS search on top of
    # that oversubscribe the cores and spin. Set before faiss/torch load; OMP_NUM_THREADS=N overrides.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from rsir.app.search import StoreUnavailable, shared_store

    try:
        store = shared_store(Path(index_dir), workers)
        store.__enter__()
    except StoreUnavailable as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    try:
        typer.echo(
            f"rsir search on http://{host}:{port}/ (index {index_dir}{', text-ITSR on' if itsr else ''}"
            f"{', text search on' if text_model else ''})"
        )
        _run(uvicorn, host, port, workers, log_level)
    finally:
        store.__exit__(None, None, None)


def _run(uvicorn, host: str, port: int, workers: int, log_level: str) -> None:
    from rsir.app.auth import uvicorn_log_config

    uvicorn.run(
        "rsir.app.search:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=uvicorn_log_config(),  # ?token=... is masked in the access log
        proxy_headers=False,
    )


def serving_or_exit(host: str, token: str | None, runtime: str) -> None:
    """An unknown runtime, or a bind beyond loopback without a good token, is one line and exit 2, before
    anything loads (both web apps)."""
    from rsir.app.common import BindError, check_bind
    from rsir.cli.runtime import check_runtime

    try:
        check_runtime(runtime)
        check_bind(host, token)
    except (BindError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def port_or_exit(host: str, port: int) -> None:
    """A busy port is one line and exit 2, before the URL is announced (not uvicorn's errno and exit 3)."""
    from rsir.cli.validate import port_free

    try:
        port_free(host, port)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
