"""ANNEAL's initial round: the share of similar pairs it asks, per initial strategy, on three archives.

    .venv/bin/python benchmarks/bench_initial_round.py            # table
    .venv/bin/python benchmarks/bench_initial_round.py --json

The first threshold (MGUE) and classifier (BCGUE) need both answers in the initial round. For each
archive (the embedded demo, UC Merced, SIRI-WHU; the shared ones skipped when absent) and seed, the
campaign's own selection runs on the gallery side of ``holdout:0.2`` with the default pool (10
neighbours per item + 2000 random pairs), and the simulated oracle (shared class) answers. Reported:
mean share of similar pairs, and how many seeds got no similar or no dissimilar pair at all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def archives(wanted: list[str]) -> dict[str, Path]:
    """``wanted`` among demo, ucmerced, siri-whu; shared archives that are absent are left out."""
    from rsir.data.demo import demo_archive_path

    shared = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
    roots = {"demo": demo_archive_path(), "ucmerced": shared / "ucmerced", "siri-whu": shared / "siri-whu"}
    return {name: roots[name] for name in wanted if roots[name].is_dir()}


def initial_share(vectors, labels, strategy: str, budget: int, seed: int) -> float:
    """The campaign's initial selection (same pool seed and rng streams as CampaignLoop.start)."""
    from rsir.active.campaign import CampaignSettings, _rng
    from rsir.active.oracle import LabelOracle
    from rsir.active.strategies import SelectionContext, get_strategy

    s = CampaignSettings(strategy="anneal-mgue", seed=seed)
    ctx = SelectionContext(
        vectors,
        n_neighbours=s.n_neighbours,
        n_random=s.n_random,
        pool_seed=int(_rng(seed, 0, 1).integers(2**31)),
    )
    pairs = get_strategy(strategy).select(ctx, budget, _rng(seed, 0, 2))
    return float(np.mean(LabelOracle(labels).answer(pairs) == 1))


def run(seeds: int, budgets: list[int], strategies: list[str], wanted: list[str]) -> list[dict]:
    from rsir.cbir.evaluation import labels_of, split_of
    from rsir.cbir.space import Space
    from rsir.data.archives import open_archive

    space, rows = Space.load(), []
    for name, root in archives(wanted).items():
        archive = open_archive(root)
        emb = space.embed(archive, progress=False)
        labels = labels_of(archive, emb.ids)
        for budget in budgets:
            for strategy in strategies:
                shares = []
                for seed in range(seeds):
                    gallery = split_of(labels, "holdout:0.2", seed).gallery
                    shares.append(
                        initial_share(emb.vectors[gallery], [labels[g] for g in gallery], strategy, budget, seed)
                    )
                rows.append(
                    {
                        "archive": name,
                        "items": len(emb.ids),
                        "initial": budget,
                        "strategy": strategy,
                        "similar_share": round(float(np.mean(shares)), 3),
                        "min_share": round(float(np.min(shares)), 3),
                        "seeds_all_one_answer": int(sum(s in (0.0, 1.0) for s in shares)),
                        "seeds": seeds,
                    }
                )
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budgets", default="20,100")
    p.add_argument("--strategies", default="neighbours,mixed")
    p.add_argument("--archives", default="demo,ucmerced,siri-whu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    rows = run(args.seeds, budgets, args.strategies.split(","), args.archives.split(","))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    from rsir.cli.common import table

    print(table(rows))


if __name__ == "__main__":
    main()
