"""Time ANNEAL scoring + selection from candidate pools of 10^4 .. 10^6 pairs.

Embeddings are synthetic and L2-normalised (N items in 21 noisy classes, like UC Merced's 2,100
scenes), labelled pairs are answered by the label oracle, so thresholds and classifiers are fitted
on realistic data. Each timing is one ``strategy.select`` on a fresh context (distances and the
classifier fit included), with the pool given; pool construction is timed on its own.

    .venv/bin/python benchmarks/bench_selection.py              # table
    .venv/bin/python benchmarks/bench_selection.py --json       # machine-readable
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial

import numpy as np

from rsir.active.oracle import LabelOracle
from rsir.active.pool import Pairs, candidate_pool, neighbour_pairs, random_pairs
from rsir.active.strategies import SelectionContext, get_strategy

STRATEGIES = ["mgue", "bcgue", "anneal-mgue", "anneal-bcgue", "closure-mgue"]


def synthetic(n_items: int, dim: int, n_classes: int, seed: int) -> tuple[np.ndarray, LabelOracle]:
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, n_classes, n_items)
    centres = rng.standard_normal((n_classes, dim))
    emb = centres[cls] + 1.5 * rng.standard_normal((n_items, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb.astype(np.float32), LabelOracle([[f"c{c}"] for c in cls])


def timed(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def select(name: str, emb: np.ndarray, labelled: Pairs, labels: np.ndarray, pool: Pairs, budget: int) -> Pairs:
    ctx = SelectionContext(emb, labelled, labels, candidates=pool)
    return get_strategy(name).select(ctx, budget, np.random.default_rng(0))


def run(args: argparse.Namespace) -> list[dict]:
    rows = []
    for dim in args.dims:
        emb, oracle = synthetic(args.n_items, dim, 21, args.seed)
        rng = np.random.default_rng(args.seed)
        labelled = random_pairs(len(emb), args.n_labelled, rng)
        labels = oracle.answer(labelled)
        n_near = len(neighbour_pairs(emb, args.n_neighbours).difference(labelled))
        for size in args.pool_sizes:
            build = partial(candidate_pool, emb, args.n_neighbours, size - n_near, rng, exclude=labelled)
            pool_s, pool = timed(build, 1)
            rows.append(dict(dim=dim, pool=len(pool), strategy="(pool build)", seconds=pool_s))
            for name in args.strategies:
                sec, picks = timed(partial(select, name, emb, labelled, labels, pool, args.budget), args.repeats)
                rows.append(dict(dim=dim, pool=len(pool), strategy=name, seconds=sec, picked=len(picks)))
    return rows


def run_big_pool(args: argparse.Namespace) -> list[dict]:
    """Pool construction alone on a big archive (neighbours of ``max_anchors`` items + random)."""
    emb, _ = synthetic(args.big_n, args.dims[-1], 21, args.seed)
    rng = np.random.default_rng(args.seed)
    build = partial(candidate_pool, emb, args.n_neighbours, 10**6, rng, max_anchors=args.max_anchors)
    sec, pool = timed(build, 1)
    label = f"(pool N={args.big_n}, anchors={args.max_anchors})"
    return [dict(dim=args.dims[-1], pool=len(pool), strategy=label, seconds=sec)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-items", type=int, default=2100)
    p.add_argument("--dims", type=int, nargs="+", default=[256, 128])
    p.add_argument("--pool-sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    p.add_argument("--n-neighbours", type=int, default=4)
    p.add_argument("--n-labelled", type=int, default=500)
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--strategies", nargs="+", default=STRATEGIES)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--big-n", type=int, default=0, help="also time pool building for this many items")
    p.add_argument("--max-anchors", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=0, help="cap BLAS/OpenMP/faiss threads (0: leave as is)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        # Oversubscribed machines make multi-threaded BLAS and faiss spin; a cap shows the floor.
        import faiss
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        faiss.omp_set_num_threads(args.threads)
    rows = run(args) + (run_big_pool(args) if args.big_n else [])
    meta = dict(
        n_items=args.n_items,
        budget=args.budget,
        n_labelled=args.n_labelled,
        n_neighbours=args.n_neighbours,
        cpus=os.cpu_count(),
        machine=platform.processor() or platform.machine(),
        numpy=np.__version__,
        threads=args.threads or "default",
        load_avg_1min=round(os.getloadavg()[0], 2),
    )
    if args.json:
        print(json.dumps(dict(meta=meta, rows=rows), indent=2))
        return
    print(" ".join(f"{k}={v}" for k, v in meta.items()))
    print(f"{'dim':>4} {'pool':>9} {'strategy':<14} {'seconds':>8}")
    for r in rows:
        print(f"{r['dim']:>4} {r['pool']:>9} {r['strategy']:<14} {r['seconds']:>8.3f}")


if __name__ == "__main__":
    main()
