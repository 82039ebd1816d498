"""Where rsir keeps caches (embeddings, shards, exported encoders): one place, below every room."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$RSIR_CACHE`, else `~/.cache/rsir`. Archives are often read-only, so caches never live inside them."""
    return Path(os.environ.get("RSIR_CACHE", Path.home() / ".cache" / "rsir"))
