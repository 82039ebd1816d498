"""One base config for the shared optimisation fields; each objective keeps its own defaults."""

from dataclasses import FrozenInstanceError, asdict

import pytest
import torch

from rsir.active.learner import PairTraining
from rsir.train.config import HeadTraining, Optimisation
from rsir.train.itsr import ITSRTrainConfig
from rsir.train.metric_head import TrainConfig

SHARED = ("epochs", "batch_size", "lr", "weight_decay")


def test_every_objective_config_extends_the_shared_optimisation() -> None:
    for cls in (TrainConfig, PairTraining, ITSRTrainConfig):
        assert issubclass(cls, Optimisation)
        for name in SHARED:  # declared once, in the base (an objective may only change the default)
            assert name in Optimisation.__dataclass_fields__
    assert issubclass(TrainConfig, HeadTraining) and issubclass(PairTraining, HeadTraining)


def test_defaults_are_the_ones_before_the_refactor() -> None:
    """The values the CLI flags and the benchmarks were measured with (read off the pre-#12 classes)."""
    assert {k: asdict(TrainConfig())[k] for k in (*SHARED, "hidden", "loss", "per_class", "seed")} == {
        "epochs": 40, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4, "hidden": 1024,
        "loss": "multisimilarity", "per_class": 8, "seed": 0,
    }  # fmt: skip
    assert {k: asdict(PairTraining())[k] for k in (*SHARED, "hidden", "steps", "warm_start")} == {
        "epochs": 20, "batch_size": 256, "lr": 3e-4, "weight_decay": 1e-4, "hidden": 256, "steps": 40,
        "warm_start": True,
    }  # fmt: skip
    assert {k: ITSRTrainConfig().to_dict()[k] for k in (*SHARED, "seed", "dim")} == {
        "epochs": 30, "batch_size": 128, "lr": 5e-4, "weight_decay": 0.05, "seed": 0, "dim": 256,
    }  # fmt: skip


def test_configs_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        TrainConfig("contrastive")  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        PairTraining().lr = 1.0  # type: ignore[misc]
    # a campaign's stored settings (one flat dict) still round-trip
    assert PairTraining(**asdict(PairTraining(steps=7, preserve=0.0))) == PairTraining(steps=7, preserve=0.0)


def test_adamw_takes_the_rate_and_decay_and_keeps_a_group_s_own() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = TrainConfig(lr=0.5, weight_decay=0.25).adamw([{"params": [a], "lr": 0.1}, {"params": [b]}])
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [(0.1, 0.25), (0.5, 0.25)]
