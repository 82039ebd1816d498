"""Hub encoders (timm, Hugging Face vision models, open_clip incl. RemoteCLIP / GeoRSCLIP).

They need an extra (`pip install rsir[timm]`, `rsir[hf]`, `rsir[open_clip]`) and internet on first use;
without either they fail with EncoderUnavailable and a message saying which.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from rsir.models.base import EncoderUnavailable, ImageEncoder
from rsir.models.config import IMAGENET_MEAN, IMAGENET_STD, EncoderConfig, Preprocess


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise EncoderUnavailable(f"{module} is not installed: pip install 'rsir[{extra}]' ({err})") from err


def _download(what: str, fn: Callable[[], Any]) -> Any:
    from rsir.models.hub_access import offline_hint, prepare_hub

    online = prepare_hub()  # offline: cached weights still load, anything else fails at once (no retries)
    try:
        return fn()
    except Exception as err:  # hub libraries raise many different types for "offline"
        if not online:
            raise EncoderUnavailable(f"could not load weights for {offline_hint(what)}") from err
        raise EncoderUnavailable(
            f"could not load weights for {what} (unknown name?): {type(err).__name__}: {err}"
        ) from err


def _dim_of(encoder: ImageEncoder, size: int) -> tuple[int, int]:
    with torch.no_grad():
        x = torch.zeros(1, 3, size, size)
        return encoder.encode(x).shape[-1], encoder.tokens(x).shape[-1]


class TimmEncoder(ImageEncoder):
    def __init__(self, name: str) -> None:
        super().__init__()
        timm = _import("timm", "timm")
        self.net = _download(f"timm:{name}", lambda: timm.create_model(name, pretrained=True, num_classes=0))
        cfg = timm.data.resolve_data_config({}, model=self.net)
        prep = Preprocess(size=cfg["input_size"][-1], mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
        self.config = EncoderConfig(f"timm:{name}", "timm", 0, 0, f"timm:{name}", prep)
        dim, tdim = _dim_of(self, prep.size)
        self.config = EncoderConfig(f"timm:{name}", "timm", dim, tdim, f"timm:{name}", prep)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.net.forward_features(x)
        return feats.flatten(2).transpose(1, 2) if feats.ndim == 4 else feats

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


class HFVisionEncoder(ImageEncoder):
    def __init__(self, name: str) -> None:
        super().__init__()
        transformers = _import("transformers", "hf")
        self.net = _download(f"hf:{name}", lambda: transformers.AutoModel.from_pretrained(name))
        proc = _download(f"hf:{name}", lambda: transformers.AutoImageProcessor.from_pretrained(name))
        size = proc.size.get("shortest_edge") or proc.size.get("height") or 224
        prep = Preprocess(size=size, mean=tuple(proc.image_mean), std=tuple(proc.image_std))
        self.config = EncoderConfig(f"hf:{name}", "hf", 0, 0, f"hf:{name}", prep)
        dim, tdim = _dim_of(self, size)
        self.config = EncoderConfig(f"hf:{name}", "hf", dim, tdim, f"hf:{name}", prep)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.net(pixel_values=x).last_hidden_state
        return hidden.flatten(2).transpose(1, 2) if hidden.ndim == 4 else hidden

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        return self.tokens(x).mean(dim=1)


class OpenClipEncoder(ImageEncoder):
    """The visual tower of an open_clip model; ``name`` is ``ARCH/PRETRAINED`` or ``hf-hub:org/repo``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        open_clip = _import("open_clip", "open_clip")
        arch, _, tag = name.partition("/")
        pretrained: str | None = tag
        if arch.startswith("hf-hub:"):
            arch, pretrained = name, None
        model = _download(f"open_clip:{name}", lambda: open_clip.create_model(arch, pretrained=pretrained))
        self.net = model.visual
        self.net.output_tokens = True  # so forward returns (pooled, tokens)
        size = self.net.image_size[0] if isinstance(self.net.image_size, tuple) else self.net.image_size
        cfg = getattr(self.net, "preprocess_cfg", {}) or {}
        prep = Preprocess(
            size=size, mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD))
        )
        self.config = EncoderConfig(f"open_clip:{name}", "open_clip", 0, 0, f"open_clip:{name}", prep)
        dim, tdim = _dim_of(self, size)
        self.config = EncoderConfig(f"open_clip:{name}", "open_clip", dim, tdim, f"open_clip:{name}", prep)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]
