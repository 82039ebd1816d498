"""The one training loop: resume equals an uninterrupted run, steps, early stopping, the LambdaLR schedule."""

from __future__ import annotations

import math

import torch

from rsir.train.loop import FitState, FnObjective, Validation, fit, lambda_schedule, warmup_cosine


def _problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x, w_true = torch.randn(64, 4, generator=gen), torch.tensor([1.0, -2.0, 0.5, 3.0])
    y = x @ w_true
    model = torch.nn.Linear(4, 1, bias=False)
    torch.nn.init.zeros_(model.weight)

    def batches(epoch: int):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(epoch))
        return list(order.split(16))

    objective = FnObjective(batches, lambda b: ((model(x[b])[:, 0] - y[b]) ** 2).mean())
    return model, objective, torch.optim.SGD(model.parameters(), lr=0.05)


def test_resumed_run_equals_an_uninterrupted_one() -> None:
    model, objective, opt = _problem()
    whole = fit(objective, opt, epochs=4)
    model2, objective2, opt2 = _problem()
    half = fit(objective2, opt2, epochs=2)
    state = FitState.from_dict(half.to_dict())  # what a checkpoint keeps
    resumed = fit(objective2, opt2, epochs=4, state=state)
    assert torch.equal(model.weight, model2.weight)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    assert whole.losses[-1] < whole.losses[0] and whole.steps == 16


def test_steps_stop_mid_epoch() -> None:
    _, objective, opt = _problem()
    assert fit(objective, opt, epochs=10, steps=6).steps == 6


def test_early_stopping_keeps_the_best_epoch() -> None:
    _, objective, opt = _problem()
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.95])
    state = fit(objective, opt, epochs=6, validation=Validation(lambda e: {"s": next(scores)}, "s", patience=2))
    assert state.epoch == 3 and state.best["epoch"] == 1 and state.best["val"]["s"] == 0.7
    assert [h["val_s"] for h in state.history] == [0.5, 0.7, 0.6, 0.65]


def _reference_lr(step: int, total: int, warmup: int, base: float) -> float:
    """The closed form text-ITSR used before the loop took LambdaLR (linear warm-up, cosine decay)."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def test_warmup_cosine_schedule_matches_the_closed_form_also_after_resume() -> None:
    model = torch.nn.Linear(2, 1)
    groups = [{"params": [model.weight], "base_lr": 1e-3}, {"params": [model.bias], "base_lr": 5e-4}]
    opt = torch.optim.SGD(groups, lr=0.1)
    total, warmup = 40, 7
    sched = lambda_schedule(opt, warmup_cosine(total, warmup))
    seen = []
    for _ in range(total):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    for step, lrs in enumerate(seen):
        for lr, base in zip(lrs, (1e-3, 5e-4), strict=True):
            assert math.isclose(lr, _reference_lr(step, total, warmup, base), rel_tol=1e-12)
    opt2 = torch.optim.SGD([{**g, "params": list(g["params"])} for g in groups], lr=0.1)
    lambda_schedule(opt2, warmup_cosine(total, warmup), done_steps=25)
    assert [g["lr"] for g in opt2.param_groups] == seen[25]
