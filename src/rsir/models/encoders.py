"""One registry of image encoders with one contract.

Every encoder is a ``torch.nn.Module`` with a frozen :class:`EncoderConfig` and two methods:
``encode(x) -> [B, D]`` (global features) and ``tokens(x) -> [B, L, D_t]`` (patch tokens, for TFF).
``x`` is the output of :func:`rsir.models.preprocess.prepare` stacked into a batch.

Names: ``efficientnet-lite0`` (default, offline), or ``<family>:<hub name>`` for hub encoders
(``timm:resnet50``, ``hf:facebook/dinov2-small``, ``open_clip:ViT-B-32/openai``), plus aliases such
as ``remoteclip-vit-b-32`` and ``georsclip-vit-b-32``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch
from torch import nn

from rsir.models.config import EncoderConfig

DEFAULT_ENCODER = "efficientnet-lite0"


class EncoderUnavailable(RuntimeError):
    """The encoder's package or weights cannot be loaded here (missing extra, no internet...)."""


class ImageEncoder(nn.Module):
    config: EncoderConfig

    def tokens(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D_t]
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # [B, D]
        return self.tokens(x).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def split(self, n_tail: int) -> tuple[nn.Module, nn.Module]:
        """(trunk, tail) with ``encode(x) == tail(trunk(x)).mean(1)``, for partial fine-tuning on cached trunk
        outputs. Encoders that cannot be split raise EncoderUnavailable."""
        raise EncoderUnavailable(f"fine-tuning is not supported for {self.config.name}")

    @property
    def weights_hash(self) -> str:
        return weights_fingerprint(self.config.weights)


def weights_fingerprint(weights: str) -> str:
    """sha256 (first 16 hex) of a local weights file, or of the hub name when weights live on a hub."""
    path = Path(weights)
    stamp = (path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else None
    return _fingerprint(weights, stamp)


@cache
def _fingerprint(weights: str, stamp: tuple[int, int] | None) -> str:
    digest = hashlib.sha256()
    if stamp is not None:  # a file: hashed once per (size, mtime), so a rewritten file is hashed anew
        with Path(weights).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    else:
        digest.update(weights.encode())
    return digest.hexdigest()[:16]


EncoderLoader = Callable[[str], ImageEncoder]
_FAMILIES: dict[str, EncoderLoader] = {}
_ALIASES: dict[str, str] = {
    "remoteclip-vit-b-32": "open_clip:hf-hub:chendelong/RemoteCLIP-ViT-B-32",
    "georsclip-vit-b-32": "open_clip:hf-hub:Zilun/GeoRSCLIP-ViT-B-32",
}


def register_family(family: str) -> Callable[[EncoderLoader], EncoderLoader]:
    def deco(loader: EncoderLoader) -> EncoderLoader:
        _FAMILIES[family] = loader
        return loader

    return deco


def _ensure_families_registered() -> None:
    # Importing the modules registers their families; done lazily so `import rsir` stays light.
    from rsir.models import efficientnet, hub  # noqa: F401


def available_families() -> list[str]:
    _ensure_families_registered()
    return sorted(_FAMILIES)


def resolve_name(name: str) -> tuple[str, str]:
    """Split an encoder name into (family, argument)."""
    name = _ALIASES.get(name, name)
    if ":" in name:
        family, arg = name.split(":", 1)
        return family, arg
    return "efficientnet-lite", name


def load_encoder(name: str = DEFAULT_ENCODER, device: str | torch.device = "cpu") -> ImageEncoder:
    """Build the named encoder in eval mode. Raises EncoderUnavailable with a clear message when it can't."""
    _ensure_families_registered()
    family, arg = resolve_name(name)
    if family not in _FAMILIES:
        raise EncoderUnavailable(f"unknown encoder family {family!r} in {name!r}{suggest(name)}")
    encoder = _FAMILIES[family](arg)
    return encoder.eval().to(device)


HUB_PATTERNS = ("timm:<name>", "hf:<repo>", "open_clip:<arch>/<tag>")
_EXTRAS = {"timm": ("timm", "timm"), "hf": ("transformers", "hf"), "open_clip": ("open_clip", "open_clip")}


def registered_names() -> list[str]:
    """Encoder names that need no hub prefix: the offline default and the aliases."""
    return [DEFAULT_ENCODER, *_ALIASES]


def suggest(name: str) -> str:
    """The closest registered names as "; did you mean ...?", then what else is accepted."""
    import difflib

    known = registered_names()
    family, sep, arg = name.partition(":")
    if sep:  # a mistyped family: "tim:resnet50" -> "timm:resnet50"
        close = [f"{f}:{arg}" for f in difflib.get_close_matches(family.lower(), list(_EXTRAS), n=2, cutoff=0.5)]
    else:
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.3)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"{hint} (registered: {', '.join(known)}; hub encoders: {', '.join(HUB_PATTERNS)})"


def unknown_bare_name(name: str) -> EncoderUnavailable:
    """A name without a hub prefix that is not registered (other EfficientNet-Lite sizes: hub only)."""
    if name.startswith("efficientnet-lite"):
        hub = f"timm:{name.replace('-', '_')}"
        return EncoderUnavailable(f"no offline weights for {name!r} ({hub} with internet){suggest(name)}")
    return EncoderUnavailable(f"unknown encoder {name!r}{suggest(name)}")


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
    if family not in _EXTRAS:
        raise EncoderUnavailable(f"unknown encoder family {family!r} in {name!r}{suggest(name)}")
    module, extra = _EXTRAS[family]
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
