"""The text tower of an open_clip model (CLIP, RemoteCLIP, GeoRSCLIP) as a text-ITSR text encoder.

Names: ``open_clip:ARCH/PRETRAINED`` (e.g. ``open_clip:ViT-B-16/openai``), ``open_clip:hf-hub:org/repo``,
or the image registry's aliases (``remoteclip-vit-b-32``, ``georsclip-vit-b-32``), so the image and text
towers of one CLIP pair up by name. Needs ``pip install 'rsir[open_clip]'`` and internet on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
from torch import nn

from rsir.models.base import TextEncoderUnavailable, resolve_name, text_weights_hash


def is_open_clip_name(name: str) -> bool:
    return resolve_name(name)[0] == "open_clip"


class OpenClipTextEncoder(nn.Module):
    """``encode(list[str]) -> [N, D]`` (the tower's projected, unnormalised text features)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        spec = resolve_name(name)[1]
        try:
            open_clip = importlib.import_module("open_clip")
        except ImportError as exc:
            raise TextEncoderUnavailable(f"open_clip is not installed: pip install 'rsir[open_clip]' ({exc})") from exc
        arch, _, tag = spec.partition("/")
        pretrained: str | None = tag
        if arch.startswith("hf-hub:"):
            arch, pretrained = spec, None
        from rsir.models.hub_access import prepare_hub

        online = prepare_hub()  # unreachable hub: cache-only, so a miss fails at once (no retries)
        try:
            self.model = open_clip.create_model(arch, pretrained=pretrained or None)
            self.tokenizer = open_clip.get_tokenizer(arch)
        except Exception as exc:  # noqa: BLE001 - download / hub / unknown-name errors of many kinds
            if not online:
                from rsir.models.hub_access import offline_hint

                raise TextEncoderUnavailable(f"cannot load open_clip text tower: {offline_hint(repr(name))}") from exc
            raise TextEncoderUnavailable(
                f"cannot load open_clip text tower {name!r} ({type(exc).__name__}: {exc}); it needs internet "
                "on first use, offline use 'all-minilm-l6-v2'"
            ) from exc
        self.model.visual = None  # the image tower is the image encoder's business
        self.name = name
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer(["x"])).shape[-1])

    @property
    def weights_hash(self) -> str:
        return text_weights_hash(self.name)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 128, progress: bool = False) -> torch.Tensor:
        from tqdm.auto import tqdm

        self.eval()
        device = next(self.model.parameters()).device
        parts = []
        for start in tqdm(range(0, len(texts), batch_size), desc="text", disable=not progress, unit="batch"):
            tokens = self.tokenizer(list(texts[start : start + batch_size])).to(device)
            parts.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0, self.dim)
