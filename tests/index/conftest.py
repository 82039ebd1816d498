"""Fixtures of the index tests: the demo vectors with dates and footprints, a Milvus Lite file."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_support import geo_meta, milvus_lite_or_skip  # noqa: E402


@pytest.fixture(scope="session")
def geo_demo(demo_index: Path):
    """(manifest, vectors) of the demo index, the manifest carrying dates and footprints."""
    from rsir.index.searcher import SearchIndex

    src = SearchIndex(demo_index)
    return replace(src.manifest, meta=geo_meta(len(src.manifest.ids))), np.asarray(src.vectors)


@pytest.fixture(scope="session")
def milvus_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return milvus_lite_or_skip(tmp_path_factory.mktemp("milvus") / "store.db")
