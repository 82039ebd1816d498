"""Fixtures of the data room: the seeded tiny archive and the shared real data (skipped when absent)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

# --import-mode=importlib leaves sys.path alone; the generator is also a script, so import it by path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny import TinyArchive, write_tiny_archive  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    return Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()


def shared_or_skip(name: str) -> Path:
    path = shared_data_dir() / name
    if not path.is_dir():
        pytest.skip(f"shared data {name!r} not found at {path} (set RSIR_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyArchive:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rasterio's NotGeoreferenced and the like while writing
        return write_tiny_archive(tmp_path_factory.mktemp("tiny") / "archive", seed=7)


@pytest.fixture(scope="session")
def bigearthnet_dir() -> Path:
    return shared_or_skip("bigearthnet-s2-example")


@pytest.fixture(scope="session")
def ucmerced_dir() -> Path:
    return shared_or_skip("ucmerced")
