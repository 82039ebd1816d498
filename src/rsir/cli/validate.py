"""Option checks every command runs first: a typo must fail in a second, not after the archive is embedded.

Each check raises ValueError (``user_errors`` turns it into one line and exit 2) with the accepted
values and, for near misses, the closest ones. Library imports stay inside the functions so `rsir --help`
stays instant.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

import typer


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


def choice(option: str, value: str, choices: Sequence[str], what: str | None = None) -> str:
    """``value`` if it is one of ``choices``; else "unknown <what> 'x' (--option); choose from ..."."""
    if value not in choices:
        what = what or option.split()[0].lstrip("-").replace("-", " ")
        raise ValueError(
            f"unknown {what} {value!r} ({option}); choose from {', '.join(choices)}{did_you_mean(value, choices)}"
        )
    return value


def split(value: str) -> str:
    """`loo` or `holdout[:F]` (the CBIR / ANNEAL query split)."""
    from rsir.data.splits import parse_split

    parse_split(value)
    return value


def encoder(name: str | None) -> None:
    """Registry checks without loading weights (unknown name, missing extra); None = the default."""
    if name:
        from rsir.models.encoders import check_encoder_name

        check_encoder_name(name)


def text_encoder(name: str) -> None:
    from rsir.models.text import check_text_encoder_name

    check_text_encoder_name(name)


def device(value: str) -> str:
    """Typer callback for `--device`: one check for every command that takes it."""
    from rsir.models.device import DeviceUnavailable, check_device

    try:
        return check_device(value)
    except DeviceUnavailable as err:
        raise typer.BadParameter(str(err)) from None


def existing(path: Path, what: str) -> Path:
    if not Path(path).exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def index_options(index_type: str, engine: str, pq_m: int | None, nlist: int | None, store: str = "faiss") -> None:
    """`rsir index`: the store, the index type it builds, the engine (Ray installed?) and the IVF-PQ sizes."""
    from rsir.cbir.indexing import ENGINES
    from rsir.index.faiss_index import INDEX_TYPES
    from rsir.index.store import parse_store

    backend, _ = parse_store(store)
    if backend.kind == "faiss":
        choice("--index-type", index_type, INDEX_TYPES)
    else:
        backend.resolve_kind(index_type, 1)  # the store's own index types (milvus: also ivfflat, ivfsq8)
    choice("--engine", engine, ENGINES)
    for option, value in (("--pq-m", pq_m), ("--nlist", nlist)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    if engine == "ray":
        from rsir.embed.ray_engine import require_ray

        require_ray()  # even when every shard is cached: the report must not say "ray" for a local run


def loss(name: str | None, pairs: bool) -> None:
    """`rsir train cbir --loss`: the names depend on whether the head learns from labels or from pairs."""
    if name is None:
        return
    from rsir.train.metric_head import LOSSES

    choice("--loss" + (" (with --pairs)" if pairs else ""), name, ["balanced", *LOSSES] if pairs else list(LOSSES))


def new_output(path: Path, overwrite: bool, *, marker: str, what: str, rerun: str) -> None:
    """Refuse to replace an existing ``what`` (recognised by ``marker``) unless ``--overwrite``."""
    if (Path(path) / marker).exists() and not overwrite:
        raise ValueError(f"{path} already holds a {what}; pass --overwrite to replace it ({rerun})")


def port_free(host: str, port: int) -> None:
    """Bind the port once (as uvicorn will) so a busy one fails before the URL is announced."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise ValueError(f"cannot bind {host}:{port}: {err}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        if os.name != "nt":  # as uvicorn does: lets a restarted server reuse a port in TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            reason = "is already in use (another server running?)" if _in_use(err) else f"cannot be bound: {err}"
            raise ValueError(f"port {port} on {host} {reason}; choose another with --port") from None


def _in_use(err: OSError) -> bool:
    import errno

    return err.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1))


def main_process() -> bool:
    """False on every rank but 0 under torchrun: reports are printed once, not once per rank."""
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True
