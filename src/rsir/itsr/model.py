"""The text-ITSR model (fusion + image head, text head, learnable temperature) and its checkpoint.

A checkpoint is a folder: ``manifest.json`` (fusion, dims, encoder names and weights hashes, epoch (from 1), val
metrics, versions) + ``model.pt`` (the best-on-validation state dict); training also keeps ``last.pt``.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from rsir.models.fusion import ProjectionHead, TFFConfig, build_fusion

MANIFEST = "manifest.json"
WEIGHTS = "model.pt"


@dataclass
class ITSRConfig:
    fusion: str
    encoder: str
    encoder_hash: str
    image_dim: int
    token_dim: int
    n_tokens: int
    text_encoder: str
    text_hash: str
    text_dim: int
    dim: int = 256
    tff: dict = field(default_factory=lambda: TFFConfig().to_dict())
    dropout: float = 0.1
    token_stage: int = 0  # 0: the encoder's final tokens; N: the map after all but its last N blocks

    def to_dict(self) -> dict:
        return asdict(self)


class ITSRModel(nn.Module):
    def __init__(self, config: ITSRConfig) -> None:
        super().__init__()
        self.config = config
        self.fusion = build_fusion(
            config.fusion, config.image_dim, config.token_dim, config.n_tokens, TFFConfig(**config.tff)
        )
        self.image_head = ProjectionHead(self.fusion.out_dim, config.dim, dropout=config.dropout)
        self.text_norm = nn.LayerNorm(config.text_dim)
        self.text_head = ProjectionHead(config.text_dim, config.dim, dropout=config.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's init

    @property
    def needs_tokens(self) -> bool:
        return bool(self.fusion.needs_tokens)

    @torch.no_grad()
    def reduce_tokens(self, tokens: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """Apply the fusion's fixed token pooling once to cached tokens (float16 [N, 2, L', Dt])."""
        reduce = getattr(self.fusion, "reduce_tokens", None)
        if reduce is None:
            return tokens
        parts = [reduce(tokens[s : s + chunk]).to(torch.float16) for s in range(0, len(tokens), chunk)]
        return torch.cat(parts)

    def encode_pairs(self, globals_: torch.Tensor | None, tokens: torch.Tensor | None) -> torch.Tensor:
        """globals [B, 2, D] and/or tokens [B, 2, L, Dt] -> L2-normalised [B, dim]."""
        return self.image_head(self.fusion(globals_, tokens))

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text-encoder embeddings [B, Dtext] -> L2-normalised [B, dim]."""
        return self.text_head(self.text_norm(text))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100)).exp()


def manifest_dict(config: ITSRConfig, epoch: int, val: dict, extra: dict | None = None) -> dict:
    import rsir

    return {
        "kind": "rsir-itsr-checkpoint",
        "format": 1,
        "config": config.to_dict(),
        "epoch": epoch,
        "val": val,
        "versions": {
            "rsir": getattr(rsir, "__version__", "?"),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        **(extra or {}),
    }


def save_checkpoint(folder: Path, model: ITSRModel, manifest: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS}.tmp{os.getpid()}"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, folder / WEIGHTS)
    tmp_m = folder / f".{MANIFEST}.tmp{os.getpid()}"
    tmp_m.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp_m, folder / MANIFEST)


def load_checkpoint(folder: str | Path, device: str = "cpu") -> tuple[ITSRModel, dict]:
    folder = Path(folder)
    if not (folder / MANIFEST).is_file() or not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(f"{folder} is not an rsir itsr checkpoint (needs {MANIFEST} and {WEIGHTS})")
    manifest = json.loads((folder / MANIFEST).read_text())
    model = ITSRModel(ITSRConfig(**manifest["config"]))
    model.load_state_dict(torch.load(folder / WEIGHTS, map_location=device, weights_only=True))
    return model.to(device).eval(), manifest
