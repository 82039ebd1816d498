"""Text-ITSR with the image encoder's last blocks fine-tuned (``rsir itsr train --finetune N``).

The frozen trunk's feature maps of both dates are computed once and cached (most of the forward pass); each
step runs the shared tail on them, so both dates go through the same, learning weights. Batch-norm statistics
stay frozen (small CPU batches would make them noisy). The best checkpoint carries the whole encoder as
``encoder.pt``; evaluation and search then embed the gallery with it (its weights hash keys the cache).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rsir.models.heads import ENCODER_WEIGHTS


class TunedTail:
    """Image inputs of :func:`rsir.train.itsr.train_itsr` computed by a trainable encoder tail."""

    def __init__(self, encoder, n_tail: int, train_maps: np.ndarray, val_maps: np.ndarray, device: str) -> None:
        self.encoder, self.device = encoder, device
        _, self.tail = encoder.split(n_tail)
        self.tail.eval()
        self.trainable = self.tail
        self.train_maps = torch.from_numpy(np.array(train_maps)).to(device)  # float16 [N, 2, C, h, w]
        self.val_maps = val_maps

    def param_groups(self, config) -> list[dict]:
        params = [p for p in self.tail.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": config.weight_decay, "base_lr": config.finetune_lr}]

    def _forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """maps [B, 2, C, h, w] -> (globals [B, 2, Dt], tokens [B, 2, L, Dt]); globals are the token mean."""
        tokens = self.tail(maps.flatten(0, 1).float())
        tokens = tokens.reshape(maps.shape[0], 2, *tokens.shape[1:])
        return tokens.mean(2), tokens

    def batch(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._forward(self.train_maps[pairs])

    @torch.inference_mode()
    def val_features(self, val_feats, batch_size: int = 64):
        """The validation split's features with the tail as it is now."""
        glob, tokens = [], []
        for s in range(0, len(self.val_maps), batch_size):
            g, t = self._forward(torch.from_numpy(np.array(self.val_maps[s : s + batch_size])).to(self.device))
            glob.append(g.float().cpu())
            tokens.append(t.to(torch.float16).cpu())
        return replace(val_feats, globals_=torch.cat(glob).numpy(), tokens=torch.cat(tokens).numpy())

    def state_dict(self) -> dict:
        return {"tail": self.tail.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "tail" in state:
            self.tail.load_state_dict(state["tail"])

    def save(self, out: Path) -> None:
        tmp = Path(out) / f".{ENCODER_WEIGHTS}.tmp{os.getpid()}"
        torch.save(self.encoder.state_dict(), tmp)
        os.replace(tmp, Path(out) / ENCODER_WEIGHTS)

    def shapes(self) -> tuple[int, int, int]:
        """(image_dim, token_dim, n_tokens) of the tail's output, for the model config."""
        with torch.inference_mode():
            g, t = self._forward(self.train_maps[:1])
        return g.shape[-1], t.shape[-1], t.shape[-2]
