"""The shared real data (../shared/data, or $RSIR_SHARED_DATA) for tests of any room; a test that needs a
folder that is absent skips with the reason. A module of its own, not a conftest: test modules import it by
name, and under --import-mode=importlib every room's conftest is a module called `conftest`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()


def shared_or_skip(name: str) -> Path:
    path = shared_data_dir() / name
    if not path.is_dir():
        pytest.skip(f"shared data {name!r} not found at {path} (set RSIR_SHARED_DATA)")
    return path
