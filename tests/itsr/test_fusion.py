"""GFF operators, TFF batch-first correctness, and the model's shapes."""

from __future__ import annotations

import pytest
import torch

from rsir.models.fusion import (
    FUSIONS,
    GFF,
    TFF,
    AfterOnly,
    TFFConfig,
    apply_operator,
    build_fusion,
    parse_operators,
)

D, L, DT = 12, 16, 10


def _inputs(b: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2, D, generator=g), torch.randn(b, 2, L, DT, generator=g)


def test_gff_operators_by_value():
    a = torch.tensor([[1.0, -2.0]])
    b = torch.tensor([[3.0, 5.0]])
    assert apply_operator("concat", a, b).tolist() == [[1.0, -2.0, 3.0, 5.0]]
    assert apply_operator("diff", a, b).tolist() == [[2.0, 7.0]]
    assert apply_operator("absdiff", b, a).tolist() == [[2.0, 7.0]]
    assert apply_operator("sum", a, b).tolist() == [[4.0, 3.0]]
    assert apply_operator("product", a, b).tolist() == [[3.0, -10.0]]
    with pytest.raises(ValueError, match="unknown GFF operator"):
        parse_operators("concat+max")


@pytest.mark.parametrize(
    ("ops", "width"),
    [
        ("concat", 2 * D),
        ("diff", D),
        ("absdiff", D),
        ("sum", D),
        ("product", D),
        ("concat+diff", 3 * D),
        ("sum+product+absdiff", 3 * D),
    ],
)
def test_gff_output_is_the_operators_joined(ops: str, width: int):
    gff = GFF(D, ops)
    g, _ = _inputs()
    out = gff(g)
    assert out.shape == (5, width) and gff.out_dim == width
    normed = gff.norm(g)
    want = torch.cat([apply_operator(op, normed[:, 0], normed[:, 1]) for op in ops.split("+")], -1)
    assert torch.allclose(out, want)


def test_gff_diff_sees_the_order_of_dates_and_after_ignores_before():
    g, _ = _inputs()
    swapped = g.flip(1)
    assert torch.allclose(GFF(D, "diff")(g), -GFF(D, "diff")(swapped), atol=1e-6)
    after = AfterOnly(D)
    changed_before = g.clone()
    changed_before[:, 0] += 3
    assert torch.allclose(after(g), after(changed_before))


def test_before_control_reads_the_before_date_only():
    g, _ = _inputs()
    before = build_fusion("before", D, DT, L)
    changed_after = g.clone()
    changed_after[:, 1] += 3
    assert torch.allclose(before(g), before(changed_after))
    assert torch.allclose(before(g), before.norm(g[:, 0]))
    assert torch.allclose(before(g), AfterOnly(D)(g.flip(1)))  # the after-only path on swapped dates


@pytest.mark.parametrize("name", FUSIONS)
def test_every_fusion_shape(name: str):
    f = build_fusion(name, D, DT, L, TFFConfig(d_model=16, heads=2, layers=1)).eval()
    g, t = _inputs()
    out = f(g, t if f.needs_tokens else None)
    assert out.shape == (5, f.out_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "cfg",
    [
        TFFConfig(d_model=16, heads=2, layers=2, dropout=0.0),
        TFFConfig(d_model=16, heads=2, layers=1, pool="cls", diff_stream=False, dropout=0.0, global_skip=False),
        TFFConfig(d_model=16, heads=4, layers=1, grid=2, dropout=0.0),
        TFFConfig(d_model=16, heads=2, layers=1, pool="cls", cell_readout=3, dropout=0.0),
    ],
)
def test_tff_is_batch_first(cfg: TFFConfig):
    torch.manual_seed(0)
    tff = TFF(DT, L, cfg, global_dim=D).eval()
    g, t = _inputs(b=6)
    with torch.no_grad():
        out = tff(g, t)
        perm = torch.tensor([3, 0, 5, 1, 4, 2])
        assert torch.allclose(tff(g[perm], t[perm]), out[perm], atol=1e-5)  # permuting items permutes outputs
        alone = tff(g[2:3], t[2:3])
        assert torch.allclose(alone, out[2:3], atol=1e-5)  # one sample does not see the others
        other_t, other_g = t.clone(), g.clone()
        other_t[[0, 1, 3, 4, 5]] = torch.randn(5, 2, L, DT)
        other_g[[0, 1, 3, 4, 5]] = torch.randn(5, 2, D)
        assert torch.allclose(tff(other_g, other_t)[2], out[2], atol=1e-5)


def test_tff_uses_patch_order_and_dates():
    torch.manual_seed(0)
    tff = TFF(DT, L, TFFConfig(d_model=16, heads=2, layers=1, dropout=0.0, grid=None, global_skip=False)).eval()
    with torch.no_grad():
        torch.nn.init.normal_(tff.pos, std=1.0)
        torch.nn.init.normal_(tff.time, std=1.0)
        _, t = _inputs(b=2)
        out = tff(None, t)
        assert not torch.allclose(tff(None, t.flip(1)), out, atol=1e-4)  # before/after are told apart
        assert not torch.allclose(tff(None, t.flip(2)), out, atol=1e-4)  # patch positions matter


def test_tff_pooling_once_equals_pooling_in_forward():
    torch.manual_seed(0)
    tff = TFF(DT, 49, TFFConfig(d_model=16, heads=2, layers=1, dropout=0.0, grid=4, global_skip=False)).eval()
    t = torch.randn(3, 2, 49, DT)
    pooled = tff.reduce_tokens(t)
    assert pooled.shape == (3, 2, 16, DT)
    with torch.no_grad():
        assert torch.allclose(tff(None, t), tff(None, pooled), atol=1e-5)
    # Token grids that are not square (or already small) are used as they are.
    assert TFF(DT, 10, TFFConfig(d_model=16, heads=2, layers=1)).reduce_tokens(t[:, :, :10]).shape[2] == 10


def test_tff_global_skip_adds_gff_concat_diff():
    torch.manual_seed(0)
    cfg = TFFConfig(d_model=16, heads=2, layers=1, dropout=0.0, cell_readout=3, grid=None)
    tff = TFF(DT, L, cfg, global_dim=D).eval()
    assert tff.out_dim == 16 + 3 * L + 3 * D  # CLS, per-cell readout, GFF concat+diff
    g, t = _inputs()
    with torch.no_grad():
        out = tff(g, t)
        assert torch.allclose(out[:, 16 + 3 * L :], tff.skip(g))
        # Changing one cell of the after image changes that cell's readout most.
        t2 = t.clone()
        t2[:, 1, 5] += 5.0 * torch.randn(DT)  # not a constant shift: LayerNorm would remove that
        delta = (tff(g, t2) - out)[:, 16 : 16 + 3 * L].reshape(5, L, 3).abs().sum(-1)
        assert (delta.argmax(1) == 5).all()
    with pytest.raises(ValueError, match="needs the date globals"):
        tff(None, t)


def test_unknown_fusion_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown fusion"):
        build_fusion("lff", D, DT, L)
    with pytest.raises(ValueError, match="pool"):
        TFF(DT, L, TFFConfig(pool="max"))
