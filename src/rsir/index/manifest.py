"""The manifest that travels with every index: what made the vectors and what each row is."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass
class IndexManifest:
    encoder: str
    weights_hash: str
    dim: int
    metric: str
    index_type: str
    ids: list[str]
    paths: list[str]
    labels: list[list[str]]
    archive_root: str
    head: str | None = None
    head_hash: str | None = None
    params: dict = field(default_factory=dict)
    meta: list[dict] = field(default_factory=list)
    rsir_version: str = ""
    runtime: str = ""  # what ran the encoder for the vectors: torch or onnx (rsir.models.runtime)
    # which store holds the vectors ({"kind": "faiss"} | {"kind": "milvus", "uri": ..., "collection": ...})
    store: dict = field(default_factory=lambda: {"kind": "faiss"})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def read(cls, folder: Path) -> IndexManifest:
        path = Path(folder) / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{folder} is not an rsir index (no {MANIFEST}); build one with `rsir index`")
        return cls(**json.loads(path.read_text()))

    def check_compatible(self, encoder: str, weights_hash: str, head_hash: str | None) -> None:
        """Queries must be embedded exactly as the index was; anything else gives meaningless scores."""
        mine = (self.encoder, self.weights_hash, self.head_hash)
        theirs = (encoder, weights_hash, head_hash)
        if mine != theirs:
            raise IndexMismatch(
                f"index was built with encoder={self.encoder} (weights {self.weights_hash}, head {self.head_hash}); "
                f"query uses encoder={encoder} (weights {weights_hash}, head {head_hash}). {self._fix(head_hash)}"
            )

    def _fix(self, head_hash: str | None) -> str:
        rebuild = f"rsir index {self.archive_root}" + (f" --head {self.head}" if self.head else "") + " --out NEW_INDEX"
        if self.head and head_hash != self.head_hash:
            return (
                f"The head at {self.head} changed after this index was built: rebuild the index with it "
                f"(`{rebuild}`), or put back the head the index was built with (train new heads with another --out)"
            )
        return f"Rebuild the index with the current encoder: `{rebuild}`"


class IndexMismatch(ValueError):
    pass
