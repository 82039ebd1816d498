import torch

from rsir.models.heads import HeadConfig, ResidualHead, head_hash, load_head, save_head


def test_head_is_identity_at_init() -> None:
    x = torch.nn.functional.normalize(torch.randn(5, 16), dim=1)
    head = ResidualHead(HeadConfig(in_dim=16, hidden=8)).eval()
    torch.testing.assert_close(head(x), x)


def test_head_round_trip(tmp_path) -> None:
    head = ResidualHead(HeadConfig(in_dim=16, hidden=8, encoder="efficientnet-lite0"))
    torch.nn.init.normal_(head.branch[-1].weight)
    save_head(head, tmp_path / "h", {"split": "holdout:0.2"})
    loaded, meta = load_head(tmp_path / "h")
    x = torch.randn(3, 16)
    torch.testing.assert_close(loaded(x), head.eval()(x))
    assert meta["hash"] == head_hash(tmp_path / "h") and meta["training"]["split"] == "holdout:0.2"
    assert loaded.config.encoder == "efficientnet-lite0"
