"""Connections to Milvus: one pymilvus client per (address, token) and process, released on demand, and
pymilvus errors turned into one clear :class:`MilvusUnavailable`."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from rsir.index.store import StoreUnavailable

EXTRA = "pip install 'rsir[milvus]'"
TOKEN_ENV = "RSIR_MILVUS_TOKEN"
URI_ENV = "RSIR_MILVUS_URI"  # overrides the manifest's uri (e.g. serve workers sent to a shared server)


class MilvusUnavailable(StoreUnavailable):
    """pymilvus is missing, the server cannot be reached, or Milvus refused a request."""


_clients: dict[tuple[str, str | None], Any] = {}  # pymilvus MilvusClient, imported lazily
_clients_lock = threading.Lock()


def is_server(uri: str) -> bool:
    """A server address (``scheme://...``), as opposed to a Milvus Lite file."""
    return re.match(r"^[a-z][a-z0-9+.-]*://", uri) is not None


def is_lite(uri: str) -> bool:
    """A Milvus Lite file (embedded), as opposed to a server address."""
    return not is_server(uri)


def client(uri: str):
    """One pymilvus client per (uri, token) and process: Milvus Lite runs one server per file and process."""
    token = os.environ.get(TOKEN_ENV) or None
    key = (uri, token)
    with _clients_lock:
        if key not in _clients:
            try:
                from pymilvus import MilvusClient
            except ImportError:
                raise MilvusUnavailable(f"the milvus store needs pymilvus and milvus-lite: {EXTRA}") from None
            _import_scipy_sparse()
            try:
                _clients[key] = MilvusClient(uri=uri, token=token or "")
            except Exception as err:
                raise MilvusUnavailable(f"cannot reach Milvus at {uri}: {err}") from None
        return _clients[key]


def _import_scipy_sparse() -> None:
    """pymilvus re-executes ``scipy.sparse`` on a request's first use, unlocked; two first searches at once (the
    service's request threads) then deadlock on its submodules' import locks. Imported whole here, under the
    client lock, its submodules are already loaded when that happens."""
    with contextlib.suppress(ImportError):
        import scipy.sparse  # noqa: F401


def release(uri: str) -> None:
    """Close this process's clients of ``uri`` and, for a Milvus Lite file, stop its embedded server (which
    frees the file for another process)."""
    with _clients_lock:
        for key in [key for key in _clients if key[0] == uri]:
            with contextlib.suppress(Exception):  # already closed or unreachable: nothing left to release
                _clients.pop(key).close()
    if is_lite(uri):
        try:
            from milvus_lite.server_manager import server_manager_instance
        except ImportError:
            return
        server_manager_instance.release_server(uri)


def release_under(prefix: str) -> None:
    """Release every client whose address starts with ``prefix`` (Milvus Lite files in a scratch folder)."""
    with _clients_lock:
        uris = {key[0] for key in _clients if key[0].startswith(prefix)}
    for uri in uris:
        release(uri)


@contextlib.contextmanager
def milvus_errors(what: str) -> Iterator[None]:
    """Turn pymilvus exceptions into one clear MilvusUnavailable."""
    try:
        yield
    except Exception as err:
        if type(err).__module__.startswith("pymilvus"):
            raise MilvusUnavailable(f"Milvus refused to {what}: {getattr(err, 'message', err)}") from None
        raise
