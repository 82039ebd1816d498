"""Helpers of the index tests: geo metadata for the demo vectors, Milvus Lite or a skip, index builders."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest


def geo_meta(n: int) -> list[dict]:
    """One day apart in row order, footprints on a 1-degree grid; every 17th item has neither."""
    return [
        {}
        if i % 17 == 16
        else {
            "date": (date(2020, 1, 1) + timedelta(days=i)).isoformat(),
            "bbox": [i % 10, i // 10, i % 10 + 0.5, i // 10 + 0.5],
        }
        for i in range(n)
    ]


def milvus_lite_or_skip(db: Path) -> str:
    """A Milvus Lite file that starts here, or the test is skipped with the reason."""
    try:
        from rsir.index.milvus_store import client

        client(str(db)).list_collections()
    except Exception as err:  # missing extra, or the embedded server cannot start on this machine
        pytest.skip(f"Milvus Lite cannot start here: {err}")
    return str(db)


def build(folder: Path, manifest, vectors: np.ndarray, kind: str = "flat", store: str = "faiss", **params) -> Path:
    """An index of ``vectors`` written through the store backends (as `rsir index` does, without embedding)."""
    from rsir.index.faiss_index import IndexParams
    from rsir.index.store import parse_store

    backend, location = parse_store(store)
    manifest = replace(manifest, index_type=kind, store=backend.record(location, folder))
    backend.build(folder, vectors, manifest, IndexParams(index_type=kind, **params))
    return folder
