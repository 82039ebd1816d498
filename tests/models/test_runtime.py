"""ONNX Runtime behind the encoder contract: same results as eager torch, cached exports, honest fallbacks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rsir.models.config import EncoderConfig, Preprocess
from rsir.models.encoders import ImageEncoder, load_encoder
from rsir.models.preprocess import prepare
from rsir.models.runtime import RuntimeUnavailable, frozen_pass, onnx_dir, runtime_of, set_runtime

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


@pytest.fixture(scope="module")
def demo_batch(demo_archive) -> torch.Tensor:
    """Eight real demo scenes of different classes, prepared exactly as the embed path prepares them."""
    from rsir.data.images import load_image

    items = demo_archive.items[::21][:8]
    return torch.stack([prepare(load_image(it.path), Preprocess(size=224)) for it in items])


def _both(encoder: ImageEncoder, part: str, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, str]:
    eager = frozen_pass(set_runtime(encoder, "torch"), part)(x).numpy()
    fast = frozen_pass(set_runtime(encoder, "onnx"), part)
    set_runtime(encoder, "auto")
    return eager, fast(x).numpy(), fast.runtime


def test_encode_matches_eager_torch_on_real_images(encoder, demo_batch) -> None:
    eager, fast, runtime = _both(encoder, "encode", demo_batch)
    assert runtime == "onnx" and fast.shape == eager.shape == (8, 1280)
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731  (index vectors are unit)
    assert np.abs(unit(fast) - unit(eager)).max() < 1e-4
    assert np.abs(fast - eager).max() < 1e-4 * max(1.0, np.abs(eager).max())


@pytest.mark.parametrize("part", ["tokens", "trunk:2"])
def test_token_path_and_trunk_match_eager_torch(encoder, demo_batch, part: str) -> None:
    eager, fast, runtime = _both(encoder, part, demo_batch[:4])
    assert runtime == "onnx" and fast.shape == eager.shape
    assert np.abs(fast - eager).max() < 1e-4 * max(1.0, np.abs(eager).max())


def test_export_is_cached_once_per_encoder_pass_and_size(encoder) -> None:
    frozen_pass(set_runtime(encoder, "onnx"))
    # one file for these weights (other tests of the session may export fine-tuned weights beside it)
    files = sorted(p.name for p in onnx_dir().glob(f"efficientnet-lite0-{encoder.weights_hash}-encode-224px-*.onnx"))
    assert len(files) == 1
    assert frozen_pass(encoder) is frozen_pass(encoder)  # resolved once, not per call
    pickle.dumps(set_runtime(encoder, "auto"))  # the Ray engine ships encoders to its actors


class _Tiny(ImageEncoder):
    """A small real encoder (conv + pooling); ``bessel`` adds an op the ONNX exporter has no mapping for."""

    def __init__(self, bessel: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bessel = torch.nn.Conv2d(3, 8, 3, stride=4), bessel
        name = "tiny-bessel" if bessel else "tiny"  # another architecture is another encoder name
        self.config = EncoderConfig(name, "test", 8, 8, name, Preprocess(size=32))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.conv(x)
        if self.bessel:
            fmap = torch.special.i0(fmap)
        return fmap.flatten(2).transpose(1, 2)


def test_weights_changed_in_place_get_a_new_export() -> None:
    tiny = set_runtime(_Tiny(), "onnx")
    x = torch.randn(3, 3, 32, 32)
    before = frozen_pass(tiny)
    with torch.no_grad():
        tiny.conv.bias.add_(1.0)  # what an optimiser step does
    after = frozen_pass(tiny)
    assert after is not before
    with torch.no_grad():
        np.testing.assert_allclose(after(x).numpy(), tiny.encode(x).numpy(), atol=1e-5)


def test_auto_falls_back_to_torch_with_a_note_and_onnx_refuses(capsys) -> None:
    tiny = _Tiny(bessel=True)
    x = torch.randn(2, 3, 32, 32)
    run = frozen_pass(tiny)  # auto
    assert run.runtime == "torch" and runtime_of(tiny) == "auto"
    assert "using eager torch" in capsys.readouterr().err
    with torch.no_grad():
        np.testing.assert_allclose(run(x).numpy(), tiny.encode(x).numpy(), atol=1e-6)
    with pytest.raises(RuntimeUnavailable, match="does not export to ONNX"):
        frozen_pass(set_runtime(tiny, "onnx"))  # from the failure marker: not exported again
    assert list(onnx_dir().glob("tiny-bessel-*.failed")) and not list(onnx_dir().glob("tiny-bessel-*.onnx"))


def test_auto_keeps_an_encoder_on_its_accelerator() -> None:
    """Without ONNX Runtime's CUDA provider, an encoder on another device runs there in eager torch."""
    on_meta = _Tiny().to("meta")  # stands for a GPU here: any device that is not the CPU
    assert frozen_pass(on_meta).runtime == "torch"


def test_unknown_runtime_is_refused(encoder) -> None:
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        set_runtime(encoder, "tensorrt")


def test_int8_is_close_explicit_and_cached_under_its_own_key() -> None:
    from rsir.embed.cache import embedding_key
    from rsir.models.runtime import cache_variant

    tiny = _Tiny()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        eager = torch.nn.functional.normalize(tiny.encode(x), dim=1)
    run = frozen_pass(set_runtime(tiny, "onnx-int8"))
    assert run.runtime == "onnx-int8" and list(onnx_dir().glob("tiny-*-int8.onnx"))
    cosines = (torch.nn.functional.normalize(run(x), dim=1) * eager).sum(1)
    assert float(cosines.min()) > 0.9  # approximate, not exact: hence its own cache key
    keys = {}
    for runtime in ("torch", "onnx", "onnx-int8"):
        variant = cache_variant(set_runtime(tiny, runtime))
        keys[runtime] = embedding_key(Path("/a"), ["x"], tiny.config, "w", variant=variant)
    assert keys["torch"] == keys["onnx"] != keys["onnx-int8"]
    assert keys["torch"] == embedding_key(Path("/a"), ["x"], tiny.config, "w")  # exact runtimes: keys as before
