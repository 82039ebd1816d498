"""Fixtures of the data room: the seeded tiny archive and the shared real data (skipped when absent)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

# --import-mode=importlib leaves sys.path alone; the generator is also a script, so import it by path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny import TinyArchive, write_tiny_archive  # noqa: E402
from shared_data import shared_data_dir, shared_or_skip  # noqa: E402, F401 (fixtures below use them)

REPO = Path(__file__).resolve().parents[2]


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
