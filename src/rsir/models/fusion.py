"""Fusion of the two dates of a bitemporal pair into one vector, and projection heads.

- ``GFF``: global features of both dates combined by operators (``concat``, ``diff`` = after - before,
  ``absdiff``, ``sum``, ``product``), several joined with ``+`` (``concat+diff``).
- ``TFF``: a batch-first transformer over both dates' patch tokens with learned positional and temporal
  embeddings; optionally a third stream of token differences (after - before), which carries the change
  explicitly; output pooled (mean) or read from a CLS token.
- ``gate`` (``rsir.models.fusion_gate``): after tokens pooled where the pair changed, next to the globals.
- ``gate-tff`` (``rsir.models.fusion_gate_tff``): the gate plus a transformer over its top-k changed places.
- ``AfterOnly``: the after image alone (the single-image baseline); ``before``: the before image alone
  (a control).

Every fusion takes ``globals_ [B, 2, D]`` and ``tokens [B, 2, L, Dt]`` (either may be None when unused)
and returns ``[B, out_dim]``; ``needs_tokens`` says which input it reads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

GFF_OPERATORS = ("concat", "diff", "absdiff", "sum", "product")
FUSIONS = tuple(f"gff-{op}" for op in GFF_OPERATORS) + ("gff-concat+diff", "tff", "gate", "gate-tff", "after", "before")


def parse_operators(spec: str) -> tuple[str, ...]:
    ops = tuple(op.strip() for op in spec.split("+") if op.strip())
    bad = [op for op in ops if op not in GFF_OPERATORS]
    if not ops or bad:
        raise ValueError(f"unknown GFF operator(s) {bad or spec!r}; known: {GFF_OPERATORS}, joined with '+'")
    return ops


def apply_operator(op: str, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    if op == "concat":
        return torch.cat([before, after], dim=-1)
    if op == "diff":
        return after - before
    if op == "absdiff":
        return (after - before).abs()
    if op == "sum":
        return before + after
    if op == "product":
        return before * after
    raise ValueError(f"unknown GFF operator {op!r}; known: {GFF_OPERATORS}")


class GFF(nn.Module):
    needs_tokens = False

    def __init__(self, dim: int, operators: str | tuple[str, ...] = "concat") -> None:
        super().__init__()
        self.operators = parse_operators(operators) if isinstance(operators, str) else tuple(operators)
        self.out_dim = sum(2 * dim if op == "concat" else dim for op in self.operators)
        # Globals of different encoders live on different scales; one norm per date keeps ops comparable.
        self.norm = nn.LayerNorm(dim)

    def forward(self, globals_: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        g = self.norm(globals_)
        before, after = g[:, 0], g[:, 1]
        return torch.cat([apply_operator(op, before, after) for op in self.operators], dim=-1)


class AfterOnly(nn.Module):
    """One date alone: the after image (the single-image baseline), or the before image (a control: a
    model that reads the change must beat it clearly)."""

    needs_tokens = False

    def __init__(self, dim: int, date: int = 1) -> None:
        super().__init__()
        self.out_dim, self.date = dim, date
        self.norm = nn.LayerNorm(dim)

    def forward(self, globals_: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(globals_[:, self.date])


@dataclass(frozen=True)
class TFFConfig:
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    pool: str = "cls"  # "cls" (a learned token attends to the rest) or "mean" over all tokens
    diff_stream: bool = True  # add (after - before) tokens as a third stream
    # Average-pool a square token grid to grid x grid first (7x7 -> 4x4 keeps quadrants, costs ~1/3).
    grid: int | None = 4
    # Also pass GFF concat+diff of the date globals to the head: the global picture (what is there) comes
    # straight from the encoder, the transformer adds where and how it changed.
    global_skip: bool = True
    # Channels per grid cell read out from the change tokens and flattened into the output (0 = off):
    # keeps *where* explicitly, which mean / CLS pooling has to encode indirectly.
    cell_readout: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


class TFF(nn.Module):
    """Transformer over ``[before tokens | after tokens (| diff tokens)]``, batch-first throughout."""

    needs_tokens = True

    def __init__(
        self, token_dim: int, n_tokens: int, config: TFFConfig | None = None, global_dim: int | None = None
    ) -> None:
        super().__init__()
        cfg = config or TFFConfig()
        if cfg.pool not in ("mean", "cls"):
            raise ValueError(f"TFF pool must be 'mean' or 'cls', got {cfg.pool!r}")
        if cfg.d_model % cfg.heads:
            raise ValueError(f"TFF width {cfg.d_model} must be divisible by its {cfg.heads} heads")
        self.config = cfg
        self.n_streams = 3 if cfg.diff_stream else 2
        self.side = math.isqrt(n_tokens) if math.isqrt(n_tokens) ** 2 == n_tokens else None
        if cfg.grid and self.side and self.side > cfg.grid:
            n_tokens = cfg.grid * cfg.grid
        else:
            self.side = None  # no pooling: not a square grid, or already small enough
        self.norm_in = nn.LayerNorm(token_dim)
        self.proj = nn.Linear(token_dim, cfg.d_model)
        self.diff_proj = nn.Linear(token_dim, cfg.d_model) if cfg.diff_stream else None
        self.pos = nn.Parameter(torch.zeros(1, 1, n_tokens, cfg.d_model))
        self.time = nn.Parameter(torch.zeros(1, self.n_streams, 1, cfg.d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.time, std=0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model)) if cfg.pool == "cls" else None
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.heads,
            dim_feedforward=2 * cfg.d_model,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
            activation="gelu",
        )
        # enable_nested_tensor only matters with padding masks (none here) and warns with norm_first.
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(cfg.d_model)
        self.skip = GFF(global_dim or token_dim, "concat+diff") if cfg.global_skip else None
        self.readout = nn.Linear(cfg.d_model, cfg.cell_readout) if cfg.cell_readout else None
        self.out_dim = cfg.d_model + (self.skip.out_dim if self.skip is not None else 0) + cfg.cell_readout * n_tokens

    def forward(self, globals_: torch.Tensor | None, tokens: torch.Tensor) -> torch.Tensor:
        b, dates, n, _ = tokens.shape
        if dates != 2:
            raise ValueError(f"TFF expects tokens [B, 2, L, D], got {tuple(tokens.shape)}")
        if self.side is not None and n == self.side * self.side:
            tokens = self.reduce_tokens(tokens)
            n = tokens.shape[2]
        t = self.norm_in(tokens.float())
        streams = [self.proj(t)]  # [B, 2, L, d]
        if self.diff_proj is not None:
            streams.append(self.diff_proj(t[:, 1] - t[:, 0]).unsqueeze(1))
        x = torch.cat(streams, dim=1) + self.pos[:, :, :n] + self.time  # [B, S, L, d]
        x = x.reshape(b, -1, x.shape[-1])  # [B, S*L, d]: batch stays dim 0 (batch_first)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1)
        x = self.norm_out(self.encoder(x))
        parts = [x[:, 0] if self.cls is not None else x.mean(dim=1)]
        if self.readout is not None:
            parts.append(self.readout(x[:, -n:]).flatten(1))  # the last stream: diff (or after) tokens
        if self.skip is not None:
            if globals_ is None:
                raise ValueError("TFF with global_skip needs the date globals [B, 2, D]")
            parts.append(self.skip(globals_.float()))
        return torch.cat(parts, dim=-1)

    def reduce_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The fixed (parameter-free) token pooling; callers may apply it once to cached tokens."""
        if self.side is None or tokens.shape[2] != self.side * self.side:
            return tokens
        b, dates, _, d = tokens.shape
        tokens = tokens.float()
        grid = tokens.reshape(b * dates, self.side, self.side, d).permute(0, 3, 1, 2)
        pooled = nn.functional.adaptive_avg_pool2d(grid, self.config.grid)
        return pooled.flatten(2).transpose(1, 2).reshape(b, dates, -1, d)


class ProjectionHead(nn.Module):
    """Two-layer MLP with a linear residual path into the shared space (the output is L2-normalised)."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden: int | None = None, dropout: float = 0.1):
        super().__init__()
        hidden = hidden or max(out_dim * 2, 512)
        self.linear = nn.Linear(in_dim, out_dim)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.linear(x) + self.mlp(x), dim=-1)


def build_fusion(name: str, dim: int, token_dim: int, n_tokens: int, tff: TFFConfig | None = None) -> nn.Module:
    """``gff-<ops>``, ``tff``, ``gate`` (rsir.models.fusion_gate), ``gate-tff``, ``after`` or ``before`` -> a module
    with ``out_dim`` and ``needs_tokens``."""
    if name == "after":
        return AfterOnly(dim)
    if name == "before":
        return AfterOnly(dim, date=0)
    if name == "tff":
        return TFF(token_dim, n_tokens, tff, global_dim=dim)
    if name.startswith("gff-"):
        return GFF(dim, name[4:])
    from rsir.models.fusion_gate import GATE_FUSIONS, ChangeGate, GateConfig

    if name in GATE_FUSIONS:
        return ChangeGate(token_dim, GateConfig(**GATE_FUSIONS[name]), global_dim=dim)
    from rsir.models.fusion_gate_tff import GATE_TFF_FUSIONS, GateTFF, GateTFFConfig

    if name in GATE_TFF_FUSIONS:
        return GateTFF(token_dim, n_tokens, GateTFFConfig(**GATE_TFF_FUSIONS[name]), global_dim=dim)
    raise ValueError(f"unknown fusion {name!r}; known: {', '.join(FUSIONS)} (or gff-<op>+<op>...)")
