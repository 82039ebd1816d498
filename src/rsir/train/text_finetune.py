"""Fine-tuning the text encoder's last transformer layers (``rsir text train --text-finetune N``).

The frozen lower layers' hidden states of every train and val caption are computed once (captions are
short: UCM's are ~15 tokens), so a step runs only the top N layers, a copy that learns, and mean-pools them
as the encoder does. The best checkpoint carries those layers as ``text_encoder.pt``; evaluation, `rsir
search --text` and the service load the encoder with them (``Encoders(text_weights=...)``) and embed
queries with the whole encoder, which equals the lower-states + top-layers path (a test holds them equal).
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rsir.models.text import TEXT_WEIGHTS, run_layers, top_layers_state
from rsir.train.inputs import NothingLearns


class TunedText:
    """Text inputs of :func:`rsir.train.itsr.train_itsr` computed by trainable top layers of the text encoder."""

    def __init__(self, encoder, n_top: int, train_captions: list[str], val_captions: list[str], device: str) -> None:
        encoder.check_top(n_top)
        self.n_top, self.device = n_top, device
        self.layers = copy.deepcopy(encoder.layers[len(encoder.layers) - n_top :]).to(device)  # the cached one stays
        self.trainable = self.layers
        self.train_states, self.train_mask = (t.to(device) for t in encoder.lower_states(train_captions, n_top))
        self.val_states, self.val_mask = encoder.lower_states(val_captions, n_top)

    def param_groups(self, config) -> list[dict]:
        named = [(n, p) for n, p in self.layers.named_parameters() if p.requires_grad]
        decay = [p for _, p in named if p.ndim >= 2]  # matrices only: biases and LayerNorms get none
        other = [p for _, p in named if p.ndim < 2]
        lr = config.text_finetune_lr
        return [
            {"params": decay, "weight_decay": config.weight_decay, "base_lr": lr},
            {"params": other, "weight_decay": 0.0, "base_lr": lr},
        ]

    def _forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = int(mask.sum(1).max())  # padding beyond the batch's longest caption does nothing
        return run_layers(self.layers, states[:, :length], mask[:, :length])

    def batch(self, captions: torch.Tensor) -> torch.Tensor:
        """Caption indices -> text features [B, Dtext]; dropout on in training steps, as in BERT fine-tuning."""
        self.layers.train(torch.is_grad_enabled())
        return self._forward(self.train_states[captions], self.train_mask[captions])

    @torch.inference_mode()
    def _encode_all(self, states: torch.Tensor, mask: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """[M, Dtext] float32 in inference mode; captions batched by length (less padding), rows in order."""
        self.layers.eval()
        order = torch.argsort(mask.sum(1), stable=True)
        out = torch.empty(len(states), states.shape[-1])
        for s in range(0, len(order), batch_size):
            rows = order[s : s + batch_size]
            out[rows] = self._forward(states[rows].to(self.device), mask[rows].to(self.device)).float().cpu()
        return out.numpy()

    def encode_val(self) -> np.ndarray:
        return self._encode_all(self.val_states, self.val_mask)

    def encode_train(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Training captions (``rows``, default all) as the layers see them now (the querybank of
        :mod:`rsir.text.querybank`)."""
        if rows is None:
            return self._encode_all(self.train_states, self.train_mask)
        idx = torch.from_numpy(np.asarray(rows)).to(self.train_states.device)
        return self._encode_all(self.train_states[idx], self.train_mask[idx])

    def val_features(self, val_feats):
        """The validation split's features with the caption vectors of the layers as they are now."""
        return replace(val_feats, text=self.encode_val())

    def state_dict(self) -> dict:
        return {"layers": self.layers.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "layers" in state:
            self.layers.load_state_dict(state["layers"])

    def save(self, out: Path) -> None:
        tmp = Path(out) / f".{TEXT_WEIGHTS}.tmp{os.getpid()}"
        torch.save(top_layers_state(self.layers), tmp)
        os.replace(tmp, Path(out) / TEXT_WEIGHTS)


class FrozenText(NothingLearns):
    """Text inputs from the frozen encoder's cached caption features (the default)."""

    def __init__(self, train_feats, device: str) -> None:
        self.text = torch.from_numpy(train_feats.text).to(device)

    def batch(self, captions: torch.Tensor) -> torch.Tensor:
        return self.text[captions]
