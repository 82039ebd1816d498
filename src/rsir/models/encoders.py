"""One registry of image encoders with one contract.

Every encoder is a ``torch.nn.Module`` with a frozen :class:`EncoderConfig` and two methods:
``encode(x) -> [B, D]`` (global features) and ``tokens(x) -> [B, L, D_t]`` (patch tokens, for TFF).
``x`` is the output of :func:`rsir.models.preprocess.prepare` stacked into a batch.

Names: ``efficientnet-lite0`` (default, offline), or ``<family>:<hub name>`` for hub encoders
(``timm:resnet50``, ``hf:facebook/dinov2-small``, ``open_clip:ViT-B-32/openai``), plus aliases such
as ``remoteclip-vit-b-32`` and ``georsclip-vit-b-32``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from rsir.models.base import (  # noqa: F401 - the contracts, re-exported where users have imported them from
    ALIASES,
    DEFAULT_ENCODER,
    HUB_EXTRAS,
    HUB_PATTERNS,
    EncoderUnavailable,
    ImageEncoder,
    registered_names,
    resolve_name,
    suggest,
    unknown_bare_name,
    weights_fingerprint,
)

EncoderLoader = Callable[[str], ImageEncoder]


def _efficientnet(arg: str) -> ImageEncoder:
    from rsir.models.efficientnet import EfficientNetLite

    return EfficientNetLite(arg)


def _hub(family: str) -> EncoderLoader:
    def load(arg: str) -> ImageEncoder:
        from rsir.models import hub

        return {"timm": hub.TimmEncoder, "hf": hub.HFVisionEncoder, "open_clip": hub.OpenClipEncoder}[family](arg)

    return load


# The static table of encoder families; each family's module is imported on first use only.
FAMILIES: dict[str, EncoderLoader] = {
    "efficientnet-lite": _efficientnet,
    "timm": _hub("timm"),
    "hf": _hub("hf"),
    "open_clip": _hub("open_clip"),
}


def available_families() -> list[str]:
    return sorted(FAMILIES)


def load_encoder(name: str = DEFAULT_ENCODER, device: str | torch.device = "cpu") -> ImageEncoder:
    """Build the named encoder in eval mode. Raises EncoderUnavailable with a clear message when it can't."""
    family, arg = resolve_name(name)
    if family not in FAMILIES:
        raise EncoderUnavailable(f"unknown encoder family {family!r} in {name!r}{suggest(name)}")
    encoder = FAMILIES[family](arg)
    return encoder.eval().to(device)


def check_encoder_name(name: str) -> None:
    """Cheap checks before any work: a known family, offline weights for bare names, the hub extra installed.

    Raises EncoderUnavailable; loading weights (and the network) is left to :func:`load_encoder`.
    """
    import importlib.util

    family, arg = resolve_name(name)
    if family == "efficientnet-lite":
        if arg != DEFAULT_ENCODER:
            raise unknown_bare_name(name)
        return
    if family not in HUB_EXTRAS:
        raise EncoderUnavailable(f"unknown encoder family {family!r} in {name!r}{suggest(name)}")
    module, extra = HUB_EXTRAS[family]
    if importlib.util.find_spec(module) is None:
        raise EncoderUnavailable(f"{name!r} needs {module}: pip install 'rsir[{extra}]'")
    if not arg:
        raise EncoderUnavailable(f"{name!r} names no model; use {', '.join(HUB_PATTERNS)}")


def load_finetuned_weights(encoder: ImageEncoder, weights: str | Path) -> ImageEncoder:
    """Load fine-tuned weights saved beside a checkpoint (``encoder.pt``) into ``encoder`` (in place).

    The encoder's weights hash then follows the file, so feature caches and index manifests never mix
    features of the fine-tuned encoder with the pretrained one's.
    """
    from dataclasses import replace

    weights = Path(weights)
    encoder.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    encoder.config = replace(encoder.config, weights=str(weights.resolve()))
    return encoder.eval()
