"""The optimisation settings every training objective shares, and the one place they become an optimiser.

One config type per objective extends these (keyword-only, so each objective keeps its own field order
and defaults): :class:`rsir.train.metric_head.TrainConfig` (a head from labels or pairs, and encoder
fine-tuning), :class:`rsir.active.learner.PairTraining` (ANNEAL's per-round head) and
:class:`rsir.train.itsr.ITSRTrainConfig` (text-ITSR). An objective overrides a default by redeclaring the
field; the values (and so the CLI flags and every benchmark figure) are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Optimisation:
    """AdamW settings and the length of a run (``epochs`` passes over the data)."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def adamw(self, params: Iterable[Any], **kwargs: Any) -> Any:
        """AdamW over ``params`` (tensors or param groups) at this config's rate and weight decay; ``kwargs``
        override them (e.g. ``weight_decay`` when the groups carry their own)."""
        import torch

        return torch.optim.AdamW(params, **{"lr": self.lr, "weight_decay": self.weight_decay, **kwargs})


@dataclass(frozen=True, kw_only=True)
class HeadTraining(Optimisation):
    """A residual projection head on frozen features: the optimisation plus the head's hidden width."""

    hidden: int = 1024
