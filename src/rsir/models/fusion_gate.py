"""Change-gated pooling: pool the after tokens where the pair changed, not over the whole scene.

Change captions describe the NEW content of a small region (median ~7% of the scene on synth v2); a global
average dilutes it ~14x. Here each token i of the after date ``a_i`` gets a weight from how much it changed,
``d_i = a_i - b_i`` (both dates' tokens layer-normalised): per gate head k

    score_ik = s_k * log(||d_i|| + eps) + g_k(d_i),   s_k >= 1,   w_ik = softmax_i(score_ik)

``g`` is a small learned MLP of the difference (it starts at zero, so training starts from the pure
change-magnitude gate). Since ``s_k >= 1`` and ``g`` is bounded on bounded inputs, a token that did not
change (``d_i = 0``) gets weight ~eps / ||d_changed||: the gate ignores it, and a wrong before image (the
shuffled-before control) moves the weights. The output is, per head, the gated after content ("what is new")
and optionally the gated difference, next to GFF concat+diff of the date globals (what the scene is).

Token grid agnostic: any number of tokens L, in any order; no positional assumption.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from rsir.models.fusion import GFF


@dataclass(frozen=True)
class GateConfig:
    heads: int = 2  # gate heads: each pools its own weighted set of tokens
    hidden: int = 64  # width of the learned part of the score (0 = magnitude gate only)
    pool_diff: bool = True  # also pool the gated differences (after - before): what changed into what
    # also pool |after - before|: how much each channel moved, either way (the gated BEFORE content, the old
    # scene, needs no stream of its own: with pool_diff it is pooled after - pooled diff, same weights)
    pool_absdiff: bool = False
    global_skip: bool = True  # GFF concat+diff of the globals beside the pooled tokens
    sharpness: float = 2.0  # initial s_k (> 1): higher pools fewer, more changed tokens
    token_mlp: int = 0  # width of a per-token MLP applied to both dates before pooling (0 = pool raw tokens)
    topk: int = 0  # each head pools only its k highest-scoring tokens (0: softmax over all of them)
    eps: float = 1e-6

    def to_dict(self) -> dict:
        return asdict(self)


# Named change-gate fusions (config as data); build_fusion looks names up here.
GATE_FUSIONS: dict[str, dict] = {
    "gate": {},
    "gate-mag": {"hidden": 0},  # magnitude gate only, no learned score
    "gate-nodiff": {"pool_diff": False},
    "gate-1": {"heads": 1},
    "gate-4": {"heads": 4},
    "gate-sharp8": {"sharpness": 8.0},
    # the pooled content passes a per-token MLP first (the weights still come from the raw change): early,
    # fine maps (--token-stage) are little semantic, a learned per-token map can make them more so
    "gate-sharp8-mlp": {"sharpness": 8.0, "token_mlp": 256},
    # fourth pass (docs/benchmarks.md "Fusion levers"): a |difference| stream, a sharper start, top-k pooling
    "gate-sharp8-abs": {"sharpness": 8.0, "pool_absdiff": True},
    "gate-sharp16": {"sharpness": 16.0},
    "gate-sharp8-top16": {"sharpness": 8.0, "topk": 16},
}


class ChangeGate(nn.Module):
    """Change-gated pooling of after tokens (and differences) + GFF concat+diff of the globals."""

    needs_tokens = True

    def __init__(self, token_dim: int, config: GateConfig | None = None, global_dim: int | None = None) -> None:
        super().__init__()
        cfg = config or GateConfig()
        if cfg.heads < 1:
            raise ValueError(f"a change gate needs at least one head, got {cfg.heads}")
        if cfg.sharpness <= 1:
            raise ValueError(f"the gate's sharpness must be > 1, got {cfg.sharpness}")
        if cfg.topk < 0:
            raise ValueError(f"the gate's topk must be >= 0 (0: all tokens), got {cfg.topk}")
        self.config = cfg
        self.norm_in = nn.LayerNorm(token_dim)
        # s_k = 1 + softplus(raw): starts at cfg.sharpness, never below 1 (unchanged tokens stay ignored)
        self.sharpness = nn.Parameter(torch.full((cfg.heads,), math.log(math.expm1(cfg.sharpness - 1))))
        self.score = None
        if cfg.hidden:
            first, last = nn.Linear(token_dim, cfg.hidden), nn.Linear(cfg.hidden, cfg.heads)  # init order kept
            nn.init.zeros_(last.weight)  # g starts at zero: the gate starts as the pure change magnitude
            nn.init.zeros_(last.bias)
            self.score = nn.Sequential(first, nn.GELU(), last)
        self.token_mlp = None
        if cfg.token_mlp:
            self.token_mlp = nn.Sequential(
                nn.Linear(token_dim, cfg.token_mlp), nn.GELU(), nn.Linear(cfg.token_mlp, cfg.token_mlp)
            )
        per_head = (cfg.token_mlp or token_dim) * (1 + int(cfg.pool_diff) + int(cfg.pool_absdiff))
        self.norm_out = nn.LayerNorm(per_head)
        self.skip = GFF(global_dim or token_dim, "concat+diff") if cfg.global_skip else None
        self.out_dim = cfg.heads * per_head + (self.skip.out_dim if self.skip is not None else 0)

    def weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """Gate weights [B, L, heads] (each head sums to 1 over the L tokens) for tokens [B, 2, L, D]."""
        return self.normed(tokens)[1]

    def normed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the LayerNormed tokens [B, 2, L, D], the gate weights [B, L, heads] from their raw change)."""
        if tokens.dim() != 4 or tokens.shape[1] != 2:
            raise ValueError(f"the change gate expects tokens [B, 2, L, D], got {tuple(tokens.shape)}")
        t = self.norm_in(tokens.float())
        return t, self._weights(t[:, 1] - t[:, 0])

    def _weights(self, d: torch.Tensor) -> torch.Tensor:
        magnitude = torch.log(d.norm(dim=-1, keepdim=True) + self.config.eps)  # [B, L, 1]
        score = (1 + nn.functional.softplus(self.sharpness)) * magnitude  # [B, L, K]
        if self.score is not None:
            score = score + self.score(d)
        k = self.config.topk
        if k and k < score.shape[1]:  # the k-th largest score per head is the cut (ties may keep a few more)
            cut = score.topk(k, dim=1).values[:, -1:]
            score = score.masked_fill(score < cut, float("-inf"))
        return score.softmax(dim=1)

    def forward(self, globals_: torch.Tensor | None, tokens: torch.Tensor) -> torch.Tensor:
        return self.pool(globals_, *self.normed(tokens))

    def pool(self, globals_: torch.Tensor | None, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The gate's output for normed tokens ``t`` [B, 2, L, D] and their weights ``w`` [B, L, K] (:meth:`normed`)."""
        if self.token_mlp is not None:
            t = self.token_mlp(t)
        after, d = t[:, 1], t[:, 1] - t[:, 0]
        pooled = torch.einsum("blk,bld->bkd", w, after)
        streams = [pooled]
        if self.config.pool_diff:
            streams.append(torch.einsum("blk,bld->bkd", w, d))
        if self.config.pool_absdiff:
            streams.append(torch.einsum("blk,bld->bkd", w, d.abs()))
        pooled = torch.cat(streams, dim=-1)
        parts = [self.norm_out(pooled).flatten(1)]
        if self.skip is not None:
            if globals_ is None:
                raise ValueError("the change gate with global_skip needs the date globals [B, 2, D]")
            parts.append(self.skip(globals_.float()))
        return torch.cat(parts, dim=-1)


def gate_reference(tokens: torch.Tensor, gate: ChangeGate) -> torch.Tensor:
    """The gated pooled after content [B, K, D], token by token in Python loops (a naive reference for tests)."""
    t = gate.norm_in(tokens.float())
    b, _, n, _ = t.shape
    out = []
    for i in range(b):
        heads = []
        for k in range(gate.config.heads):
            s = 1 + nn.functional.softplus(gate.sharpness[k])
            scores = []
            for j in range(n):
                d = t[i, 1, j] - t[i, 0, j]
                extra = gate.score(d)[k] if gate.score is not None else 0.0
                scores.append(s * torch.log(torch.sqrt((d * d).sum()) + gate.config.eps) + extra)
            keep = sorted(range(n), key=lambda j: -float(scores[j].detach()))[: gate.config.topk or n]
            w = torch.zeros(n)
            w[keep] = torch.softmax(torch.stack([scores[j] for j in keep]), dim=0)
            content = [gate.token_mlp(t[i, 1, j]) if gate.token_mlp is not None else t[i, 1, j] for j in range(n)]
            heads.append(sum(w[j] * content[j] for j in range(n)))
        out.append(torch.stack(heads))
    return torch.stack(out)
