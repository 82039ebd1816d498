"""Projection heads on top of frozen encoder features.

Heads start as the identity of the pretrained geometry (the residual branch's last layer is zero), so a
head trained on a handful of labels starts from -- and stays near -- the off-the-shelf ranking.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

HEAD_WEIGHTS = "head.pt"
HEAD_MANIFEST = "head.json"
ENCODER_WEIGHTS = "encoder.pt"  # present when the encoder was fine-tuned with the head


@dataclass(frozen=True)
class HeadConfig:
    in_dim: int
    hidden: int = 1024
    dropout: float = 0.1
    encoder: str = ""
    weights_hash: str = ""


class ResidualHead(nn.Module):
    """x -> normalise(x + W2 · gelu(W1 · x)); identity at initialisation."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.branch = nn.Sequential(
            nn.LayerNorm(config.in_dim),
            nn.Linear(config.in_dim, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.in_dim),
        )
        nn.init.zeros_(self.branch[-1].weight)
        nn.init.zeros_(self.branch[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x + self.branch(x), dim=-1)


def save_head(head: ResidualHead, folder: Path, extra: dict | None = None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{HEAD_WEIGHTS}.tmp"
    torch.save(head.state_dict(), tmp)
    tmp.replace(folder / HEAD_WEIGHTS)
    meta = {"head": asdict(head.config), "hash": head_hash(folder), "training": extra or {}}
    (folder / HEAD_MANIFEST).write_text(json.dumps(meta, indent=1))


def head_hash(folder: Path) -> str:
    return hashlib.sha256((Path(folder) / HEAD_WEIGHTS).read_bytes()).hexdigest()[:16]


def load_head(folder: Path) -> tuple[ResidualHead, dict]:
    """Load a head checkpoint folder written by `rsir train cbir` (or ANNEAL)."""
    folder = Path(folder)
    manifest = folder / HEAD_MANIFEST
    if not manifest.exists():
        raise FileNotFoundError(f"{folder} is not an rsir head checkpoint (no {HEAD_MANIFEST})")
    meta = json.loads(manifest.read_text())
    head = ResidualHead(HeadConfig(**meta["head"]))
    head.load_state_dict(torch.load(folder / HEAD_WEIGHTS, map_location="cpu", weights_only=True))
    return head.eval(), meta


@runtime_checkable
class Head(Protocol):
    """What the rest of rsir needs of a trained head: features ``[N, D] -> [N, D']`` and its config.
    :class:`ResidualHead` is the one implementation; a space without a head passes ``None``."""

    config: HeadConfig

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...
