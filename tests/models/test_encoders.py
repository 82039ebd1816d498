import numpy as np
import pytest
import torch

from rsir.models.config import Preprocess
from rsir.models.encoders import EncoderUnavailable, load_encoder, resolve_name
from rsir.models.preprocess import prepare, select_bands


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def test_default_encoder_contract(encoder) -> None:
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        globals_, tokens = encoder.encode(x), encoder.tokens(x)
    assert globals_.shape == (2, encoder.config.dim) == (2, 1280)
    assert tokens.shape == (2, 49, encoder.config.token_dim)
    torch.testing.assert_close(globals_, tokens.mean(dim=1))
    assert len(encoder.weights_hash) == 16 and encoder.weights_hash == load_encoder().weights_hash


def test_encoder_recognises_imagenet_content(encoder) -> None:
    """Pretrained weights, not random ones: an image and a slightly shifted copy embed almost identically."""
    rng = np.random.default_rng(0)
    img = rng.random((3, 240, 240)).astype(np.float32).cumsum(axis=1) / 240
    a = prepare(img[:, :224, :224], encoder.config.preprocess)
    b = prepare(img[:, 4:228, 4:228], encoder.config.preprocess)
    noise = prepare(rng.random((3, 224, 224)).astype(np.float32), encoder.config.preprocess)
    with torch.inference_mode():
        ea, eb, en = torch.nn.functional.normalize(encoder.encode(torch.stack([a, b, noise])), dim=1)
    assert float(ea @ eb) > float(ea @ en)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope:x", "unknown encoder family"),
        ("efficientnet-lite4", "no offline weights"),
        ("timm:resnet18", r"rsir\[timm\]"),
    ],
)
def test_unavailable_encoders_fail_clearly(name: str, message: str) -> None:
    if name.startswith("timm:"):
        try:
            import timm  # noqa: F401

            pytest.skip("timm is installed; the missing-extra message cannot be shown")
        except ImportError:
            pass
    with pytest.raises(EncoderUnavailable, match=message):
        load_encoder(name)


def test_aliases_resolve_to_open_clip() -> None:
    assert resolve_name("remoteclip-vit-b-32") == ("open_clip", "hf-hub:chendelong/RemoteCLIP-ViT-B-32")
    assert resolve_name("efficientnet-lite0") == ("efficientnet-lite", "efficientnet-lite0")


def test_band_selection() -> None:
    prep = Preprocess()
    grey = np.full((1, 8, 8), 0.5, np.float32)
    assert select_bands(grey, prep).shape == (3, 8, 8)
    s2 = np.stack([np.full((8, 8), b / 12, np.float32) for b in range(12)])
    s2[:, 0, 0] = 0.0
    rgb = select_bands(s2, prep)
    # Sentinel-2 RGB is B04, B03, B02 (rows 3, 2, 1); each re-stretched to the full range.
    assert rgb.shape == (3, 8, 8) and rgb[0, 1, 1] > rgb[2, 1, 1] and rgb.max() <= 1 and rgb.min() >= 0
    rgbn = np.stack([np.full((8, 8), v, np.float32) for v in (0.1, 0.2, 0.3, 0.9)])
    assert np.argmax(select_bands(rgbn, prep)[:, 1, 1]) == 2  # first three bands, NIR dropped
    with pytest.raises(ValueError, match="bands"):
        select_bands(np.zeros((2, 8, 8), np.float32), prep)


def test_prepare_matches_naive_normalisation() -> None:
    prep = Preprocess(size=4)
    img = np.random.default_rng(1).random((3, 4, 4)).astype(np.float32)
    out = prepare(img, prep).numpy()
    naive = (img - np.array(prep.mean)[:, None, None]) / np.array(prep.std)[:, None, None]
    np.testing.assert_allclose(out, naive, rtol=1e-5)
    assert prepare(np.zeros((3, 300, 200), np.float32), Preprocess()).shape == (3, 224, 224)


def test_split_for_finetuning_matches_encode(encoder) -> None:
    trunk, tail = encoder.split(2)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(tail(trunk(x)).mean(dim=1), encoder.encode(x))
    with pytest.raises(ValueError, match="n_tail"):
        encoder.split(0)
