"""Where embeddings and shards are cached, and the key that says whether a cache is still valid."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rsir.cachedir import cache_root
from rsir.models.config import EncoderConfig

__all__ = ["cache_root", "embedding_key", "atomic_write_bytes"]


def embedding_key(
    root: Path, ids: list[str], config: EncoderConfig, weights_hash: str, head: str = "", variant: str = ""
) -> str:
    """Changes whenever the items, the encoder, its weights, its preprocessing or the head change, and for an
    approximate runtime (``variant``, e.g. onnx-int8; empty for the exact ones, whose keys stay as they were)."""
    fields = {"root": str(Path(root).resolve()), "ids": ids, "encoder": config.to_dict(), "w": weights_hash}
    fields["head"] = head
    if variant:
        fields["variant"] = variant
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
