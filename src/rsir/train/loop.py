"""The one optimisation loop every objective of rsir plugs into.

An objective says what a batch is and what its loss is (:class:`Objective`); the loop does the rest:
epochs (or a fixed number of steps), data-parallel sharding of each epoch's batches under a process group
(DDP itself wraps the objective's module, see :mod:`rsir.train.distributed`), gradient clipping, a torch
``LambdaLR`` schedule stepped per optimiser step, a progress bar, per-epoch history (mean loss across ranks),
validation with best-epoch tracking and early stopping, and a resumable state handed to a checkpoint hook.

Users: metric heads from labels or pairs (:mod:`rsir.train.metric_head`), ANNEAL's per-round head
(:mod:`rsir.active.learner`), partial encoder fine-tuning (:mod:`rsir.train.finetune`) and text-ITSR
(:mod:`rsir.train.itsr`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from rsir.train import distributed


class Objective(Protocol):
    def batches(self, epoch: int) -> Sequence[Any]:
        """All batches of ``epoch`` (the loop takes this rank's share); called once, when the epoch starts."""
        ...

    def loss(self, batch: Any) -> torch.Tensor: ...


class FnObjective:
    """An objective from two functions: ``batches(epoch)`` draws an epoch's batches, ``loss(batch)`` scores one."""

    def __init__(self, batches: Callable[[int], Sequence[Any]], loss: Callable[[Any], torch.Tensor]) -> None:
        self.batches, self.loss = batches, loss


@dataclass
class FitState:
    """Resumable loop state (a plain dict in checkpoints: :meth:`to_dict` / :meth:`from_dict`)."""

    epoch: int = -1  # last finished epoch
    history: list[dict] = field(default_factory=list)  # {"epoch", "loss"[, "val_<key>"]}
    best: dict | None = None  # {"epoch", "val"} of the best validated epoch
    train_seconds: float = 0.0
    steps: int = 0

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "history": self.history, "best": self.best,
                "train_seconds": self.train_seconds, "steps": self.steps}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> FitState:
        return cls(d["epoch"], list(d["history"]), d.get("best"), float(d.get("train_seconds", 0.0)),
                   int(d.get("steps", 0)))  # fmt: skip

    @property
    def losses(self) -> list[float]:
        return [h["loss"] for h in self.history]


@dataclass(frozen=True)
class Validation:
    """``run(epoch) -> scores``; ``key``: the score to maximise; stop after ``patience`` epochs without gain."""

    run: Callable[[int], dict]
    key: str
    patience: int | None = None


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up to the base rate, then cosine decay to 0 at ``total_steps`` (a ``LambdaLR`` factor)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def lambda_schedule(optimizer: torch.optim.Optimizer, factor: Callable[[int], float], done_steps: int = 0):
    """A ``LambdaLR`` on each group's ``base_lr`` (or ``lr``), positioned after ``done_steps`` steps (resume)."""
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"] = group.get("base_lr", group["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if done_steps:
        sched.last_epoch = done_steps
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor(done_steps)
    return sched


def fit(
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    steps: int | None = None,
    shard: bool = True,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip_grad: float | None = None,
    validation: Validation | None = None,
    state: FitState | None = None,
    on_epoch: Callable[[FitState, bool], None] | None = None,
    progress: bool = False,
    desc: str = "training",
) -> FitState:
    """Train until ``epochs`` (or ``steps`` optimiser steps) are done; resumes from ``state``.

    ``on_epoch(state, improved)`` runs after every epoch (after validation): the place to checkpoint.
    """
    from tqdm.auto import tqdm

    state = state or FitState()
    show = progress and distributed.is_main()
    params = [p for g in optimizer.param_groups for p in g["params"]] if clip_grad else []
    stale = sum(1 for h in state.history if h["epoch"] > (state.best or {}).get("epoch", -1))
    with tqdm(total=epochs, initial=state.epoch + 1, desc=desc, disable=not show, leave=False) as bar:
        for epoch in range(state.epoch + 1, epochs):
            if validation and validation.patience is not None and stale >= validation.patience:
                break
            if steps is not None and state.steps >= steps:
                break
            t0 = time.perf_counter()
            batches = objective.batches(epoch)
            batches = distributed.shard(list(batches)) if shard else batches
            if steps is not None:
                batches = batches[: steps - state.steps]
            losses = _run_steps(objective, batches, optimizer, scheduler, clip_grad, params)
            state.steps += len(losses)
            row = {"epoch": epoch, "loss": distributed.mean_across(float(np.mean(losses)) if losses else 0.0)}
            improved = False
            if validation is not None:
                val = validation.run(epoch)
                row[f"val_{validation.key}"] = val[validation.key]
                improved = state.best is None or val[validation.key] > state.best["val"][validation.key]
                if improved:
                    state.best, stale = {"epoch": epoch, "val": val}, 0
                else:
                    stale += 1
            state.train_seconds += time.perf_counter() - t0
            state.history.append(row)
            state.epoch = epoch
            if on_epoch is not None:
                on_epoch(state, improved)
            bar.update(1)
    return state


def _run_steps(objective, batches, optimizer, scheduler, clip_grad, params) -> list[float]:
    """One optimiser step per batch; the losses."""
    losses = []
    for batch in batches:
        loss = objective.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(params, clip_grad)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses
