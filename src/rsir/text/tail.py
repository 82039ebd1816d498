"""Fine-tuning the image encoder's last blocks on single-date scenes (``rsir text train --finetune N``).

:class:`SceneTail` is the text-ITSR :class:`rsir.train.itsr_finetune.TunedTail` over ONE date: cached trunk
maps ``[N, C, h, w]``, the tail runs once per image and its global stands for both dates. Training batches
may see each map under a random one of the 8 rotations / flips of the square grid (``augment``): overhead
scenes have no up, and turning the cached map costs nothing, unlike re-encoding turned images.
"""

from __future__ import annotations

import numpy as np
import torch

from rsir.train.itsr_finetune import TunedTail


def dihedral(maps: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """maps [B, C, h, w] with h == w; row b turned by ``which[b] % 4`` quarter turns, mirrored if >= 4."""
    out = maps.clone()
    for t in range(8):
        rows = (which == t).nonzero(as_tuple=True)[0]
        if len(rows) == 0 or t == 0:
            continue
        m = maps[rows]
        if t >= 4:
            m = m.flip(-1)
        out[rows] = torch.rot90(m, t % 4, dims=(-2, -1))
    return out


class SceneTail(TunedTail):
    """Image inputs of :func:`rsir.train.itsr.train_itsr` for single-date scenes, from a trainable tail."""

    def __init__(self, encoder, n_tail: int, train_maps, val_maps, device: str, augment: bool = False, seed: int = 0):
        super().__init__(encoder, n_tail, train_maps, val_maps, device)
        self.augment = augment and train_maps.shape[-1] == train_maps.shape[-2]
        self.rng = torch.Generator().manual_seed(seed)

    def _forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """maps [B, C, h, w] -> (globals [B, 2, Dt], tokens [B, 2, L, Dt]), the one date repeated."""
        tokens = self.tail(maps.float())
        glob = tokens.mean(1)
        return glob[:, None].expand(-1, 2, -1), tokens[:, None].expand(-1, 2, -1, -1)

    def batch(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.train_maps[pairs]
        if self.augment and torch.is_grad_enabled():  # training steps only, never validation
            which = torch.randint(0, 8, (len(pairs),), generator=self.rng).to(maps.device)
            maps = dihedral(maps, which)
        return self._forward(maps)

    @torch.inference_mode()
    def train_globals(self, batch_size: int = 64) -> np.ndarray:
        """float32 [N, 2, Dt]: the training images' globals through the tail as it is now, unturned (the
        training-memory bridge's images, :mod:`rsir.text.bridge`)."""
        parts = [self._forward(self.train_maps[s : s + batch_size])[0].float().cpu()
                 for s in range(0, len(self.train_maps), batch_size)]  # fmt: skip
        return torch.cat(parts).numpy()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "rng" in state:
            self.rng.set_state(state["rng"])
