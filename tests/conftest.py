"""Suite-wide fixtures: an isolated feature cache, the embedded demo archive, and an index built from it once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # Caches of the suite never mix with a user's ~/.cache/rsir. RSIR_TEST_CACHE keeps one across runs (dev speed).
    if "RSIR_TEST_CACHE" in os.environ:
        os.environ["RSIR_CACHE"] = os.environ["RSIR_TEST_CACHE"]
    else:
        import tempfile

        os.environ["RSIR_CACHE"] = tempfile.mkdtemp(prefix="rsir-test-cache-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def shared_data() -> Path:
    return Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def demo_archive():
    from rsir.data.archives import open_archive
    from rsir.data.demo import demo_archive_path

    return open_archive(demo_archive_path())


@pytest.fixture(scope="session")
def demo_index(demo_archive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat index of the 168 demo scenes with the default encoder (embedded once per session)."""
    from rsir.cbir.indexing import index_archive
    from rsir.cbir.space import Space

    out = tmp_path_factory.mktemp("demo-index") / "index"
    index_archive(demo_archive, out, Space.load())
    return out
