"""ANNEAL on the full UC Merced: every strategy x 3 seeds, map@20 after each round, checked against
the targets of the ANNEAL issue.

    .venv/bin/python benchmarks/bench_anneal.py                 # table + target checks, writes curve.png
    .venv/bin/python benchmarks/bench_anneal.py --json          # machine-readable
    .venv/bin/python benchmarks/bench_anneal.py --workers 1     # one campaign at a time (default: 2, one core each)

The run folder (default ``$RSIR_CACHE/bench-anneal``) holds the campaign store, so a killed benchmark
resumes where it stopped; ``--fresh`` starts over. Needs ``../shared/data/ucmerced`` (or
``RSIR_SHARED_DATA``); skips with a message when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ANNEAL = {"anneal-mgue": "mgue", "anneal-bcgue": "bcgue"}  # variant -> its uncertainty-only ablation


def data_root() -> Path:
    return Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve() / "ucmerced"


def default_out() -> Path:
    from rsir.embed.cache import cache_root

    return cache_root() / "bench-anneal"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from rsir.active.simulate import ALL_STRATEGIES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None, help="UC Merced folder (default ../shared/data/ucmerced)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default $RSIR_CACHE/bench-anneal)")
    p.add_argument("--strategies", default=",".join(ALL_STRATEGIES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--initial", type=int, default=100)
    p.add_argument("--initial-strategy", default=None, help="first round's pairs (default: the simulator's)")
    p.add_argument("--runtime", default="auto", help="frozen encoder runtime: auto, torch, onnx, onnx-int8")
    p.add_argument("--per-round", type=int, default=250)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="campaigns at a time, one core each")
    p.add_argument("--db", default=None, help="campaign store URL (default: SQLite file in the run folder)")
    p.add_argument("--fresh", action="store_true", help="delete the run folder first")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def interpolate(curve: dict[int, float], at: float) -> float | None:
    xs = sorted(curve)
    if not xs or at > xs[-1] or at < xs[0]:
        return None
    return float(np.interp(at, xs, [curve[x] for x in xs]))


def check_targets(result: dict) -> dict:
    """The issue's targets on the per-seed rows and the seed-mean curves."""
    from rsir.active.simulate import mean_curves

    rows, curves = result["rounds"], mean_curves(result["rounds"])
    off = {int(s): v for s, v in result["off_the_shelf"]["per_seed"].items()}
    worst = min(rows, key=lambda r: r["map@20"] - off[r["seed"]])
    checks: dict[str, dict] = {
        "never_below_off_the_shelf": {
            "worst_margin": round(worst["map@20"] - off[worst["seed"]], 4),
            "where": {k: worst[k] for k in ("strategy", "seed", "round")},
            "ok": worst["map@20"] >= off[worst["seed"]],
        }
    }
    variants = [v for v in ANNEAL if v in curves]
    if not variants:
        return checks
    at_2000 = {v: interpolate(curves[v], 2000) for v in variants}
    best_2000 = max((x for x in at_2000.values() if x is not None), default=None)
    checks["anneal_at_2000_pairs"] = {
        "map@20": at_2000, "target": 0.92, "ok": best_2000 is not None and best_2000 >= 0.92,
    }  # fmt: skip

    def later_mean(name: str) -> float:
        c = curves[name]
        return float(np.mean([c[n] for n in sorted(c)[1:]]))

    best = max(variants, key=later_mean)
    for rival, margin in (("random", 0.08), ("neighbours", 0.03)):
        if rival in curves:
            gap = later_mean(best) - later_mean(rival)
            checks[f"beats_{rival}"] = {"best": best, "gap": round(gap, 4), "target": margin, "ok": gap >= margin}
    for variant in variants:
        base = ANNEAL[variant]
        if base in curves:
            gaps = [curves[variant][n] - curves[base][n] for n in curves[variant] if n in curves[base]]
            checks[f"{variant}_vs_{base}"] = {"min_gap": round(min(gaps), 4), "ok": min(gaps) >= 0}
    return checks


def render(result: dict, checks: dict, out: Path) -> str:
    from rsir.active.simulate import mean_curves

    curves = mean_curves(result["rounds"])
    budgets = sorted({n for c in curves.values() for n in c})
    lines = ["map@20 (test -> pool), mean over seeds, by annotated pairs"]
    lines.append(f"{'strategy':14s}" + "".join(f"{n:>8d}" for n in budgets) + "   mean(r>=1)")
    for name, c in curves.items():
        later = np.mean([c[n] for n in sorted(c)[1:]]) if len(c) > 1 else float("nan")
        lines.append(f"{name:14s}" + "".join(f"{c.get(n, float('nan')):8.4f}" for n in budgets) + f"   {later:.4f}")
    off, full = result["off_the_shelf"]["map@20"], result["full_labels"]["map@20"]
    lines.append(f"off-the-shelf {off:.4f}   full class labels {full:.4f}   ({result['seconds']:.0f} s this run)")
    lines.append("targets:")
    for name, c in checks.items():
        detail = {k: v for k, v in c.items() if k != "ok"}
        lines.append(f"  [{'ok' if c['ok'] else 'MISS'}] {name}: {json.dumps(detail)}")
    lines.append(f"curve: {out / 'curve.png'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.data or data_root()
    if not root.is_dir():
        print(f"skipped: UC Merced not found at {root} (set RSIR_SHARED_DATA)", file=sys.stderr)
        return 0
    from rsir.active.simulate import SimulationConfig, simulate
    from rsir.data.archives import open_archive

    out = args.out or default_out()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    config = SimulationConfig(
        strategies=tuple(args.strategies.split(",")),
        seeds=args.seeds,
        initial=args.initial,
        **({"initial_strategy": args.initial_strategy} if args.initial_strategy else {}),
        runtime=args.runtime,
        per_round=args.per_round,
        rounds=args.rounds,
        workers=args.workers,
        name="bench",
    )
    start = time.perf_counter()
    result = simulate(open_archive(root), out, config, db=args.db, progress=not args.json)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    checks = check_targets(result)
    if args.json:
        print(json.dumps({**result, "targets": checks, "out": str(out)}, indent=1))
    else:
        print(render(result, checks, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
