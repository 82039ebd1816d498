"""Time ANNEAL selection (uncertainty scoring + diversity picking) over candidate pools of given sizes.

Each timing is one ``strategy.select`` on a fresh :class:`SelectionContext` with the pool given: pair
distances, the threshold / classifier fit on the labelled pairs, scoring and clustering are included;
building the pool (neighbour search + random pairs) is timed on its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np


def pool_of_size(emb: np.ndarray, size: int, rng: np.random.Generator, exclude, n_neighbours: int = 4):
    """About half neighbour pairs (as many as exist), the rest uniformly random pairs, none in ``exclude``."""
    from rsir.active.pool import Pairs, neighbour_pairs, random_pairs

    near = neighbour_pairs(emb, n_neighbours).difference(exclude)
    near = near.take(np.arange(min(len(near), size // 2)))
    far = random_pairs(len(emb), size - len(near), rng, exclude=near.concat(exclude))
    return Pairs(np.concatenate([near.i, far.i]), np.concatenate([near.j, far.j]))


def selection_benchmark(
    emb: np.ndarray,
    labels: Sequence[Sequence[str]],
    pool_sizes: list[int],
    *,
    strategies: Sequence[str] = ("anneal-bcgue", "anneal-mgue", "default"),
    budget: int = 100,
    n_labelled: int = 500,
    seed: int = 0,
) -> list[dict]:
    """Seconds per selection round for each pool size and strategy (labelled pairs answered from ``labels``)."""
    from rsir.active.oracle import LabelOracle
    from rsir.active.pool import n_all_pairs, random_pairs
    from rsir.active.strategies import SelectionContext, get_strategy

    rng = np.random.default_rng(seed)
    labelled = random_pairs(len(emb), n_labelled, rng)
    answers = LabelOracle(labels).answer(labelled)
    warm = pool_of_size(emb, min(1000, n_all_pairs(len(emb)) - len(labelled)), rng, labelled)
    for name in strategies:  # first calls import sklearn & co.: not part of a round's cost
        get_strategy(name).select(SelectionContext(emb, labelled, answers, candidates=warm), budget, rng)
    rows = []
    for size in pool_sizes:
        size = min(size, n_all_pairs(len(emb)) - len(labelled))
        start = time.perf_counter()
        pool = pool_of_size(emb, size, rng, labelled)
        rows.append({"pool": len(pool), "strategy": "(pool build)", "seconds": round(time.perf_counter() - start, 3)})
        for name in strategies:
            ctx = SelectionContext(emb, labelled, answers, candidates=pool)
            start = time.perf_counter()
            picked = get_strategy(name).select(ctx, budget, np.random.default_rng(seed))
            rows.append(
                {
                    "pool": len(pool),
                    "strategy": name,
                    "seconds": round(time.perf_counter() - start, 3),
                    "picked": len(picked),
                }
            )
    return rows
