"""Serving one index from several uvicorn workers: what the processes must share before they start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rsir.index.store import StoreUnavailable

__all__ = ["StoreUnavailable", "shared_store"]


@contextmanager
def shared_store(index_dir: Path, workers: int) -> Iterator[None]:
    """Workers share one Milvus store. A Milvus Lite file admits one process: for several workers it is served
    once, from a local Milvus Lite server the workers connect to (RSIR_MILVUS_URI). Raises
    :class:`StoreUnavailable` when that server cannot start."""
    from rsir.index.manifest import IndexManifest

    store = IndexManifest.read(index_dir).store
    if store.get("kind") != "milvus" or workers == 1:
        yield
        return
    from rsir.index.milvus_client import URI_ENV, is_lite
    from rsir.index.milvus_server import shared_lite_server

    uri = os.environ.get(URI_ENV) or store["uri"]
    if not is_lite(uri):
        yield
        return
    with shared_lite_server(uri) as address:
        os.environ[URI_ENV] = address
        yield
