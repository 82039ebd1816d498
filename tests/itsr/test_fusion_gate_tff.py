"""gate-tff: a transformer over the change gate's top-k places; reads only the picked places of both dates."""

from __future__ import annotations

import pytest
import torch

from rsir.models.fusion import build_fusion
from rsir.models.fusion_gate_tff import GATE_TFF_FUSIONS, GateTFF, GateTFFConfig, grid_coords

D, L, DT = 12, 16, 8


def _pair(b: int = 4, changed: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Globals [B, 2, D] and tokens [B, 2, L, DT] whose last ``changed`` tokens differ between the dates."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, 2, L, DT, generator=g)
    tokens[:, 0, : L - changed] = tokens[:, 1, : L - changed]
    return torch.randn(b, 2, D, generator=g), tokens


def _model(k: int = 3) -> GateTFF:
    cfg = GateTFFConfig(tokens=k, d_model=16, heads=2, layers=1, dropout=0.0, gate={"heads": 2, "hidden": 5})
    torch.manual_seed(0)
    model = GateTFF(DT, L, cfg, global_dim=D)
    with torch.no_grad():  # non-zero learned gate scores, as after training
        for p in model.gate.parameters():
            p.add_(0.5 * torch.randn(p.shape))
    return model.eval()


@pytest.mark.parametrize("name", list(GATE_TFF_FUSIONS))
def test_shape_contract_and_registry(name: str):
    model = build_fusion(name, D, DT, L).eval()
    g, tokens = _pair()
    out = model(g, tokens)
    assert isinstance(model, GateTFF) and model.needs_tokens
    assert out.shape == (4, model.out_dim) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"tokens \[B, 2, L, D\]"):
        model(g, tokens[:, :1])


def test_pick_matches_a_naive_ranking_of_gate_weights():
    model = _model(k=3)
    _, tokens = _pair(seed=1)
    with torch.no_grad():
        w = model.gate.weights(tokens)
    idx = model.pick(tokens)
    for i in range(len(tokens)):  # per pair: the three positions of largest summed weight, by sorting in Python
        total = [float(w[i, j].sum()) for j in range(L)]
        naive = sorted(range(L), key=lambda j: -total[j])[:3]
        assert idx[i].tolist() == naive
        assert set(naive) <= set(range(L - 5, L))  # ... all among the changed positions


def test_read_is_the_transformer_over_the_picked_places_only():
    model = _model(k=3)
    g, tokens = _pair(seed=2)
    idx = model.pick(tokens)
    t = model.gate.norm_in(tokens)
    rows = []
    for i in range(len(tokens)):  # one pair at a time, positions gathered by a Python loop
        x = torch.stack(
            [
                model.proj(torch.cat([t[i, 0, j], t[i, 1, j], t[i, 1, j] - t[i, 0, j]])) + model.place(model.coords[j])
                for j in idx[i].tolist()
            ]
        )
        x = torch.cat([model.cls[0], x]).unsqueeze(0)
        rows.append(model.norm_out(model.encoder(x)[0, 0]))
    with torch.no_grad():
        assert torch.allclose(model.read(tokens, idx), torch.stack(rows), atol=1e-5)
    # unchanged positions (equal in both dates) are never read: new content there leaves the output as it was
    other = tokens.clone()
    other[:, :, : L - 5] = torch.randn(4, 1, L - 5, DT)
    out, moved = model(g, tokens), model(g, other)
    cut = model.gate.out_dim - model.gate.skip.out_dim
    assert torch.allclose(out[:, :cut], moved[:, :cut], atol=1e-4)
    assert torch.allclose(out[:, model.gate.out_dim :], moved[:, model.gate.out_dim :], atol=1e-4)


def test_grid_coords_and_a_map_with_fewer_tokens_than_k():
    c = grid_coords(9)
    assert c.shape == (9, 2) and c[0].tolist() == [-1.0, -1.0] and c[5].tolist() == [0.0, 1.0]
    assert (grid_coords(7) == 0).all()  # not a square grid: no place information
    model = GateTFF(DT, 4, GateTFFConfig(tokens=16, d_model=16, heads=2, layers=1), global_dim=D).eval()
    out = model(torch.randn(2, 2, D), torch.randn(2, 2, 4, DT))
    assert out.shape == (2, model.out_dim)
    with pytest.raises(ValueError, match="at least one token"):
        GateTFF(DT, L, GateTFFConfig(tokens=0))
