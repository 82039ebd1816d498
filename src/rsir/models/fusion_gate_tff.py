"""The change gate with a transformer readout: TFF over the places the gate picks, not over fixed cells.

TFF reads both dates' tokens through a transformer and flattens a per-cell readout of a fixed 4x4 grid (fitted
to v1's quadrant changes); the change gate pools after tokens where the pair changed but sees each token alone.
Here the gate picks the ``k`` most changed token positions of a pair (its own score, summed over heads); each
picked position becomes one transformer token holding both dates there (before, after, after - before,
projected) plus an embedding of its place (normalised row and column when the tokens form a square grid;
nothing otherwise). A CLS token reads the set out; the output is the CLS state next to the gate's own output
(gated pooling + GFF concat+diff of the globals). The selection is a hard top-k: no gradient flows through
which positions are picked, only through what is read there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from rsir.models.fusion_gate import ChangeGate, GateConfig


@dataclass(frozen=True)
class GateTFFConfig:
    tokens: int = 16  # changed positions read by the transformer (fewer if the map has fewer)
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    gate: dict = field(default_factory=lambda: {"sharpness": 8.0})  # GateConfig fields of the gate inside

    def to_dict(self) -> dict:
        return asdict(self)


GATE_TFF_FUSIONS: dict[str, dict] = {"gate-tff": {}, "gate-tff-32": {"tokens": 32}}


def grid_coords(n_tokens: int) -> torch.Tensor:
    """[L, 2] row and column of each token in [-1, 1] for a square grid (row-major), zeros otherwise."""
    side = math.isqrt(n_tokens)
    if side * side != n_tokens or side < 2:
        return torch.zeros(n_tokens, 2)
    axis = torch.linspace(-1.0, 1.0, side)
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(n_tokens, 2)


class GateTFF(nn.Module):
    """Transformer over the gate's top-k changed positions (both dates each) + the change gate's output."""

    needs_tokens = True
    coords: torch.Tensor  # a registered buffer: [L, 2] normalised (row, column) of each token

    def __init__(
        self, token_dim: int, n_tokens: int, config: GateTFFConfig | None = None, global_dim: int | None = None
    ) -> None:
        super().__init__()
        cfg = config or GateTFFConfig()
        if cfg.tokens < 1:
            raise ValueError(f"gate-tff needs at least one token to read, got {cfg.tokens}")
        if cfg.d_model % cfg.heads:
            raise ValueError(f"gate-tff width {cfg.d_model} must be divisible by its {cfg.heads} heads")
        self.config = cfg
        self.gate = ChangeGate(token_dim, GateConfig(**cfg.gate), global_dim=global_dim)
        self.register_buffer("coords", grid_coords(n_tokens), persistent=False)
        self.proj = nn.Linear(3 * token_dim, cfg.d_model)  # before, after, after - before at one position
        self.place = nn.Linear(2, cfg.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        nn.init.trunc_normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.heads, dim_feedforward=2 * cfg.d_model, dropout=cfg.dropout,
            batch_first=True, norm_first=True, activation="gelu",
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(cfg.d_model)
        self.out_dim = self.gate.out_dim + cfg.d_model

    def pick(self, tokens: torch.Tensor) -> torch.Tensor:
        """Indices [B, k] of the k positions with the largest gate weight (summed over heads), most first."""
        return self._pick(self.gate.weights(tokens))

    def _pick(self, weights: torch.Tensor) -> torch.Tensor:
        w = weights.detach().sum(dim=-1)  # [B, L]; a hard pick: no gradient through which places are read
        return w.topk(min(self.config.tokens, w.shape[1]), dim=1).indices

    def read(self, tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The transformer's CLS state [B, d_model] over the positions ``idx`` [B, k] of tokens [B, 2, L, D]."""
        return self._read(self.gate.norm_in(tokens.float()), idx)

    def _read(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        before, after = t[:, 0], t[:, 1]
        at = idx.unsqueeze(-1).expand(-1, -1, t.shape[-1])
        b, a = before.gather(1, at), after.gather(1, at)  # [B, k, D]
        coords = self.coords if self.coords.shape[0] == t.shape[2] else grid_coords(t.shape[2]).to(t.device)
        x = self.proj(torch.cat([b, a, a - b], dim=-1)) + self.place(coords[idx])
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)
        return self.norm_out(self.encoder(x)[:, 0])

    def forward(self, globals_: torch.Tensor | None, tokens: torch.Tensor) -> torch.Tensor:
        t, w = self.gate.normed(tokens)  # once: the gate's pooling, the pick and the read share them
        return torch.cat([self.gate.pool(globals_, t, w), self._read(t, self._pick(w))], dim=-1)
