"""What a text-ITSR training step reads each side from: the contract, and the side that learns nothing (cached
features of a frozen encoder), shared by the image and the text side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from rsir.train.itsr import ITSRTrainConfig


class TrainingInputs(Protocol):
    """One side's inputs to a training step: its weights that learn (if any), saved and resumed with the model."""

    trainable: torch.nn.Module | None  # the weights that learn (DDP averages their gradients)

    def param_groups(self, config: ITSRTrainConfig) -> list[dict]: ...
    def val_features(self, val_feats): ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def save(self, out: Path) -> None: ...


class NothingLearns:
    """A side read from cached features: no parameters, no state, nothing to save; validation reads the cache."""

    trainable: torch.nn.Module | None = None

    def param_groups(self, config: ITSRTrainConfig) -> list[dict]:
        return []

    def val_features(self, val_feats):
        return val_feats

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def save(self, out: Path) -> None:
        pass
