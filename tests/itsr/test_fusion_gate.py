"""Change-gated pooling: ignores unchanged tokens, matches a naive reference, reads the true before image."""

from __future__ import annotations

import pytest
import torch

from rsir.models.fusion import build_fusion
from rsir.models.fusion_gate import GATE_FUSIONS, ChangeGate, GateConfig, gate_reference

D, L, DT = 12, 9, 8


def _pair(b: int = 4, changed: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Globals [B, 2, D] and tokens [B, 2, L, DT] whose last ``changed`` tokens differ between the dates."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, 2, L, DT, generator=g)
    tokens[:, 0, : L - changed] = tokens[:, 1, : L - changed]
    return torch.randn(b, 2, D, generator=g), tokens


def _trained_like(gate: ChangeGate, seed: int = 1) -> ChangeGate:
    """Non-zero learned score weights (a fresh gate starts at zero there), as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in gate.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return gate.eval()


@pytest.mark.parametrize("name", list(GATE_FUSIONS))
def test_gate_ignores_unchanged_tokens(name: str):
    gate = _trained_like(build_fusion(name, D, DT, L))
    _, tokens = _pair()
    w = gate.weights(tokens)  # [B, L, heads]
    assert w.shape == (4, L, gate.config.heads)
    assert torch.allclose(w.sum(dim=1), torch.ones(4, gate.config.heads))
    assert w[:, : L - 3].max() < 1e-6  # the six unchanged tokens get no weight
    # ... so what the unchanged tokens hold (in both dates alike) does not move the pooled output
    g, other = _pair()
    other[:, :, : L - 3] = torch.randn(4, 1, L - 3, DT)  # new unchanged content, still equal across dates
    a, b = gate(g, tokens), gate(g, other)
    pooled = gate.out_dim - gate.skip.out_dim
    assert torch.allclose(a[:, :pooled], b[:, :pooled], atol=1e-4)


def test_gate_matches_the_naive_reference():
    gate = _trained_like(ChangeGate(DT, GateConfig(heads=3, hidden=5), global_dim=D))
    _, tokens = _pair(b=3, changed=5, seed=2)
    t = gate.norm_in(tokens)
    fast = torch.einsum("blk,bld->bkd", gate.weights(tokens), t[:, 1])
    assert torch.allclose(fast, gate_reference(tokens, gate), atol=1e-5)


def test_gate_with_a_token_mlp_pools_the_mapped_after_tokens_with_the_raw_change_weights():
    gate = _trained_like(ChangeGate(DT, GateConfig(heads=2, hidden=5, token_mlp=6, pool_diff=False), global_dim=D))
    g, tokens = _pair(b=3, changed=4, seed=3)
    ref = gate_reference(tokens, gate)  # [B, K, 6]: the MLP of each after token, weighted by the raw change
    assert ref.shape == (3, 2, 6)
    out = gate(g, tokens)
    assert out.shape == (3, gate.out_dim) and gate.out_dim == 2 * 6 + gate.skip.out_dim
    assert torch.allclose(out[:, :12], gate.norm_out(ref).flatten(1), atol=1e-5)


def test_gate_output_reads_the_true_before_image_and_the_globals():
    gate = _trained_like(build_fusion("gate", D, DT, L))
    g, tokens = _pair()
    out = gate(g, tokens)
    assert out.shape == (4, gate.out_dim) and torch.isfinite(out).all()
    shuffled = tokens.clone()
    shuffled[:, 0] = tokens[:, 0].roll(1, dims=0)  # another pair's before image
    assert not torch.allclose(gate.weights(shuffled), gate.weights(tokens), atol=1e-3)
    pooled = gate.out_dim - gate.skip.out_dim
    assert torch.allclose(out[:, pooled:], gate.skip(g))


def test_gate_gradients_are_finite_with_identical_tokens():
    gate = build_fusion("gate", D, DT, L)
    g, tokens = _pair(changed=2)
    tokens.requires_grad_(True)
    gate(g, tokens).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in gate.parameters() if p.grad is not None)
    assert torch.isfinite(tokens.grad).all()


def test_gate_refuses_bad_shapes_and_configs():
    gate = build_fusion("gate", D, DT, L)
    with pytest.raises(ValueError, match=r"tokens \[B, 2, L, D\]"):
        gate(torch.randn(2, 2, D), torch.randn(2, 3, L, DT))
    with pytest.raises(ValueError, match="at least one head"):
        ChangeGate(DT, GateConfig(heads=0))
    with pytest.raises(ValueError, match="sharpness must be > 1"):
        ChangeGate(DT, GateConfig(sharpness=1.0))


def test_sharper_gate_pools_fewer_tokens():
    _, tokens = _pair(changed=6)
    soft, sharp = (ChangeGate(DT, GateConfig(sharpness=s)).eval() for s in (2.0, 8.0))
    assert torch.allclose(1 + torch.nn.functional.softplus(sharp.sharpness), torch.full((2,), 8.0))
    top = [g.weights(tokens).max(dim=1).values.mean() for g in (soft, sharp)]
    assert top[1] > top[0]


def test_topk_gate_matches_the_naive_reference_and_pools_only_k_tokens():
    gate = _trained_like(ChangeGate(DT, GateConfig(heads=2, hidden=5, topk=2), global_dim=D))
    _, tokens = _pair(b=3, changed=5, seed=4)
    w = gate.weights(tokens)
    assert ((w > 0).sum(dim=1) == 2).all()  # each head of each pair: exactly its two best tokens
    fast = torch.einsum("blk,bld->bkd", w, gate.norm_in(tokens)[:, 1])
    assert torch.allclose(fast, gate_reference(tokens, gate), atol=1e-5)
    with pytest.raises(ValueError, match="topk must be >= 0"):
        ChangeGate(DT, GateConfig(topk=-1))


def test_absdiff_stream_pools_the_gated_absolute_change():
    gate = _trained_like(ChangeGate(DT, GateConfig(heads=1, hidden=0, pool_absdiff=True), global_dim=D))
    g, tokens = _pair(b=2, changed=3, seed=5)
    t = gate.norm_in(tokens)
    w = gate.weights(tokens)
    d = t[:, 1] - t[:, 0]
    parts = [torch.einsum("blk,bld->bkd", w, x) for x in (t[:, 1], d, d.abs())]
    expected = gate.norm_out(torch.cat(parts, dim=-1)).flatten(1)
    out = gate(g, tokens)
    assert gate.out_dim == 3 * DT + gate.skip.out_dim
    assert torch.allclose(out[:, : 3 * DT], expected, atol=1e-5)
