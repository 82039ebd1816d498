"""Data-parallel training with plain ``torch.distributed`` (DDP): the same loops on 1 or N processes.

The training loops in :mod:`rsir.train.metric_head` call :func:`wrap` and :func:`shard`; outside a
process group both are no-ops, so single-process training is unchanged. Inside one, every rank builds
the same batch list (same seed), takes its share, and DDP averages the gradients, so all ranks hold
identical weights after every step.

Launching:

* several local CPU processes: :func:`run_parallel` (gloo; used by the tests);
* GPUs or several machines: ``torchrun`` sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``;
  the loops join that group by themselves (:func:`init_from_env`; nccl on GPUs, gloo on CPUs), e.g.
  ``torchrun --nproc-per-node 4 -m rsir.cli.main train cbir ARCHIVE --out HEAD`` on one GPU machine, or
  ``torchrun --nnodes 2 --node-rank R --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m rsir.cli.main ...``.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    dist = _dist()
    return (dist.get_rank(), dist.get_world_size()) if dist else (0, 1)


def is_main() -> bool:
    return world()[0] == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` describes in the environment; False when not launched so.

    Idempotent. GPUs get nccl and one device per local rank, CPUs gloo.
    """
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    if not all(v in os.environ for v in ENV_VARS) or int(os.environ["WORLD_SIZE"]) < 2:
        return False
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return True


def setup() -> str:
    """Join torchrun's process group if launched by it; the device this rank trains on ("cpu" or "cuda:N")."""
    init_from_env()
    dist = _dist()
    if dist is not None and dist.get_backend() == "nccl":
        import torch

        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


def wrap(module):
    """DDP around ``module`` inside a process group (gradients averaged across ranks); else ``module``."""
    if world()[1] == 1:
        return module
    import torch
    from torch.nn.parallel import DistributedDataParallel

    on_gpu = next(module.parameters()).is_cuda
    return DistributedDataParallel(module, device_ids=[torch.cuda.current_device()] if on_gpu else None)


def shard(batches: list) -> list:
    """This rank's share of an epoch's batches. The list is padded by cycling to a multiple of the world
    size: every rank takes the same number of steps (a rank with fewer would hang the others)."""
    rank, size = world()
    if size == 1 or not batches:
        return batches
    padded = batches + batches[: (-len(batches)) % size]
    return padded[rank::size]


def mean_across(value: float) -> float:
    """The mean of a scalar over all ranks (itself outside a process group)."""
    dist = _dist()
    if dist is None:
        return value
    import torch

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, size: int, port: int, backend: str, out: str, fn: Callable, args: tuple, kwargs: dict) -> None:
    import torch
    import torch.distributed as dist

    # Each process gets its share of the cores; oversubscribed OpenMP threads spin instead of working.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    try:
        result = fn(*args, **kwargs)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_parallel(
    fn: Callable, nprocs: int, *args, backend: str = "gloo", start_method: str = "spawn", **kwargs
) -> list[Any]:
    """Run ``fn(*args, **kwargs)`` on ``nprocs`` local processes joined in one process group; returns each
    rank's result (``fn`` must be importable by name, results picklable by ``torch.save``). ``spawn`` starts
    clean interpreters (safe with OpenMP and CUDA); ``fork`` starts faster where the parent allows it."""
    import torch
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="rsir-ddp-") as out:
        mp.start_processes(
            _entry,
            args=(nprocs, free_port(), backend, out, fn, args, kwargs),
            nprocs=nprocs,
            join=True,
            start_method=start_method,
        )
        return [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(nprocs)]


def run_all(calls: list[tuple[Callable, tuple, dict]]) -> list[Any]:
    """Several ``(fn, args, kwargs)`` calls in a row: ``run_parallel(run_all, n, calls)`` starts the
    processes (and imports torch) once for all of them."""
    return [fn(*args, **kwargs) for fn, args, kwargs in calls]
