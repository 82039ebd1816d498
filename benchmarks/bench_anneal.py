"""ANNEAL on three labelled archives: every strategy x 3 seeds, map@20 after each round with 95% intervals,
where each round's information came from, and the targets of issue 17 checked for the `default` strategy.

    .venv/bin/python benchmarks/bench_anneal.py                       # UC Merced, SIRI-WHU, Sentinel-2 tiles
    .venv/bin/python benchmarks/bench_anneal.py --archives siri-whu --seeds 1 --strategies random,neighbours,default
    .venv/bin/python benchmarks/bench_anneal.py --json                # machine-readable

Archives: ``ucmerced`` and ``siri-whu`` from ``../shared/data`` (or ``RSIR_SHARED_DATA``); ``s2`` is the
Sentinel-2 tile archive built by ``benchmarks/s2_scene_archive.py --out $RSIR_CACHE/s2-scenes``. A missing
archive is skipped with a message. Per round, besides map@20: ``sim`` = the share of similar answers among
the round's pairs, ``right`` = the share the model that picked them already got right (answer = "distance
<= the threshold fitted on earlier answers"). The run folder (default ``$RSIR_CACHE/bench-anneal``) holds a
campaign store per archive, so a killed benchmark resumes; ``--fresh`` starts over.
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
ARCHIVES = ("ucmerced", "siri-whu", "s2")
STRATEGIES = "random,neighbours,mgue,bcgue,diversity,anneal-mgue,anneal-bcgue,default"
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def archive_root(name: str) -> Path:
    from rsir.embed.cache import cache_root

    if name == "s2":
        return cache_root() / "s2-scenes"
    return Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve() / name


def default_out() -> Path:
    from rsir.embed.cache import cache_root

    return cache_root() / "bench-anneal"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archives", default=",".join(ARCHIVES), help=f"comma-separated, of {', '.join(ARCHIVES)}")
    p.add_argument("--out", type=Path, default=None, help="run folder (default $RSIR_CACHE/bench-anneal)")
    p.add_argument("--strategies", default=STRATEGIES)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--initial", type=int, default=100)
    p.add_argument("--initial-strategy", default=None, help="first round's pairs (default: the simulator's)")
    p.add_argument("--runtime", default="auto", help="frozen encoder runtime: auto, torch, onnx, onnx-int8")
    p.add_argument("--per-round", type=int, default=300)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE", help="learner setting: steps=100")
    p.add_argument("--workers", type=int, default=1, help="campaigns at a time, one core each")
    p.add_argument("--db", default=None, help="campaign store URL (default: SQLite file in the run folder)")
    p.add_argument("--fresh", action="store_true", help="delete the run folder first")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def interpolate(curve: dict[int, float], at: float) -> float | None:
    xs = sorted(curve)
    if not xs or at > xs[-1] or at < xs[0]:
        return None
    return float(np.interp(at, xs, [curve[x] for x in xs]))


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% t-interval over seeds (0 for one seed)."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(T95.get(len(v) - 1, 1.96) * v.std(ddof=1) / np.sqrt(len(v)))


def per_seed(rows: list[dict], key: str = "map@20") -> dict[str, dict[int, dict[int, float]]]:
    """``{strategy: {seed: {round: value}}}``."""
    out: dict[str, dict[int, dict[int, float]]] = {}
    for r in rows:
        out.setdefault(r["strategy"], {}).setdefault(r["seed"], {})[r["round"]] = r.get(key)
    return out


def later_means(rows: list[dict]) -> dict[str, list[float]]:
    """Per strategy, each seed's mean map@20 over the rounds after the initial one."""
    return {
        s: [float(np.mean([v for r, v in sorted(c.items()) if r >= 1])) for c in seeds.values()]
        for s, seeds in per_seed(rows).items()
    }


def check_targets(result: dict) -> dict:
    """Issue 17's targets for the `default` strategy on one archive."""
    from rsir.active.simulate import mean_curves

    rows, curves, later = result["rounds"], mean_curves(result["rounds"]), later_means(result["rounds"])
    if "default" not in curves:
        return {}
    off = {int(s): v for s, v in result["off_the_shelf"]["per_seed"].items()}
    mine = [r for r in rows if r["strategy"] == "default"]
    worst = min(mine, key=lambda r: r["map@20"] - off[r["seed"]])
    checks: dict[str, dict] = {
        "never_below_off_the_shelf": {
            "worst_margin": round(worst["map@20"] - off[worst["seed"]], 4),
            "where": {k: worst[k] for k in ("seed", "round")},
            "ok": worst["map@20"] >= off[worst["seed"]],
        }
    }
    full, curve = result["full_labels"]["map@20"], curves["default"]
    # at 2,000 answers, or at the last round when the run stops short of them (curves rise: conservative)
    pairs = min(2000, max(curve))
    at = interpolate(curve, pairs)
    if full and at is not None:
        checks["at_2000_pairs"] = {"pairs": pairs, "map@20": round(at, 4), "of_full": round(at / full, 4),
                                   "ok": at >= 0.95 * full}  # fmt: skip
    for rival, margin in (("random", 0.08), ("neighbours", 0.03)):
        if rival in later:
            gaps = [a - b for a, b in zip(later["default"], later[rival], strict=False)]
            gap, ci = mean_ci(gaps)
            checks[f"beats_{rival}"] = {
                "gap": round(gap, 4),
                "ci95": round(ci, 4),
                "target": margin,
                "ok": gap >= margin,
            }
    return checks


def render(name: str, result: dict, checks: dict) -> str:
    from rsir.active.simulate import mean_curves

    rows = result["rounds"]
    curves, later = mean_curves(rows), later_means(rows)
    # columns by round, headed by the most pairs any strategy had then (a closure strategy asks fewer
    # once the answers decide every pair: its own count shows in its `pairs` line)
    n_rounds = max(len(c) for c in curves.values())
    budgets = [max(sorted(c)[r] for c in curves.values() if len(c) > r) for r in range(n_rounds)]
    resolved = {r["strategy"]: r.get("resolved", r["strategy"]) for r in rows}
    label = {s: s if resolved[s] == s else f"{s}={resolved[s]}" for s in curves}
    width = max(14, *(len(v) + 1 for v in label.values()))
    lines = [f"## {name}: map@20 (test -> pool), mean over {result['config']['seeds']} seed(s), by annotated pairs"]
    lines.append(f"{'strategy':{width}s}" + "".join(f"{n:>7d}" for n in budgets) + "   mean(r>=1) +- 95%")
    for s, c in curves.items():
        m, ci = mean_ci(later[s])
        lines.append(f"{label[s]:{width}s}" + "".join(f"{c[n]:7.3f}" for n in sorted(c)) + f"   {m:.4f} +- {ci:.4f}")
    for s, c in curves.items():
        if sorted(c) != budgets[: len(c)]:
            lines.append(f"  pairs {label[s]:{width - 8}s}" + "".join(f"{n:>7d}" for n in sorted(c)))
    off, full = result["off_the_shelf"]["map@20"], result["full_labels"]["map@20"]
    lines.append(f"off-the-shelf {off:.4f}   all class labels {full:.4f}   ({result['seconds']:.0f} s)")
    lines.append("per round (after the initial), mean over seeds: sim = similar answers, right = model already right")
    for key, title in (("round_similar", "sim"), ("round_model_right", "right")):
        for s, seeds in per_seed(rows, key).items():
            by_round = sorted({r for c in seeds.values() for r in c})
            vals = [np.mean([c[r] for c in seeds.values() if c.get(r) is not None] or [np.nan]) for r in by_round]
            lines.append(f"  {title:5s} {label[s]:{width}s}" + "".join(f"{v:7.2f}" for v in vals[1:]))
    if checks:
        lines.append("targets (default):")
        for key, c in checks.items():
            detail = {k: v for k, v in c.items() if k != "ok"}
            lines.append(f"  [{'ok' if c['ok'] else 'MISS'}] {key}: {json.dumps(detail)}")
    return "\n".join(lines)


def simulation_config(args: argparse.Namespace):
    """The campaigns every archive runs: strategies, schedule, first round, runtime, workers, learner."""
    from rsir.active.simulate import SimulationConfig

    return SimulationConfig(
        strategies=tuple(args.strategies.split(",")),
        seeds=args.seeds,
        initial=args.initial,
        **({"initial_strategy": args.initial_strategy} if args.initial_strategy else {}),
        runtime=args.runtime,
        per_round=args.per_round,
        rounds=args.rounds,
        workers=args.workers,
        train=learner_settings(args),
        name="bench",
    )


def learner_settings(args: argparse.Namespace):
    """The learner's defaults with every ``--train KEY=VALUE`` applied."""
    from dataclasses import replace

    from rsir.active.learner import PairTraining

    train = PairTraining()
    for item in args.train:
        key, _, value = item.partition("=")
        if key not in type(train).__dataclass_fields__:
            raise SystemExit(f"--train {item}: no learner setting {key!r}")
        kind = type(getattr(train, key))
        train = replace(train, **{key: value.lower() in ("1", "true") if kind is bool else kind(value)})
    return train


def run_archive(name: str, args: argparse.Namespace, out: Path) -> dict | None:
    from rsir.active.simulate import simulate
    from rsir.data.archives import open_archive

    root = archive_root(name)
    if not root.is_dir():
        print(f"skipped {name}: not found at {root}", file=sys.stderr)
        return None
    config = simulation_config(args)
    start = time.perf_counter()
    result = simulate(open_archive(root), out / name, config, db=args.db, progress=not args.json)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or default_out()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    report = {}
    for name in args.archives.split(","):
        if name not in ARCHIVES:
            print(f"unknown archive {name!r}; known: {', '.join(ARCHIVES)}", file=sys.stderr)
            return 2
        result = run_archive(name, args, out)
        if result is None:
            continue
        checks = check_targets(result)
        report[name] = {**result, "targets": checks}
        if not args.json:
            print(render(name, result, checks), flush=True)
    if args.json:
        print(json.dumps({"archives": report, "out": str(out), "load_avg_1min": os.getloadavg()[0]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
