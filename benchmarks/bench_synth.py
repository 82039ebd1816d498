"""Speed of the semi-synthetic change-caption generator (`rsir itsr synth`, v2 by default): pairs/s.

Each setting makes a small and a large draw in a fresh subprocess (one BLAS/OpenMP thread) and reports
(large - small) / (time difference), so the fixed cost (reading and hashing the scenes) cancels; the draws go
to a temporary folder that is removed. Pass ``--src`` to time another checkout's sources the same way
(e.g. an older commit exported with ``git archive``), back to back with this one.

    .venv/bin/python benchmarks/bench_synth.py                       # workers 1, 320 vs 20 pairs
    .venv/bin/python benchmarks/bench_synth.py --workers 1 2 --repeats 2 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ONE_DRAW = """
import sys, time
from rsir.data.synth import make_synthetic
archive, out, pairs, workers, masks = sys.argv[1:6]
kw = {"workers": int(workers)} if int(workers) != 1 else {}
t = time.perf_counter()
make_synthetic(archive, out, pairs=int(pairs), seed=0, masks=masks or None, **kw)
print(time.perf_counter() - t)
"""


def _args(argv: list[str] | None) -> argparse.Namespace:
    shared = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", type=Path, default=shared / "ucmerced")
    masks = shared / "change-samples"
    p.add_argument("--masks", type=Path, default=masks if masks.is_dir() else None)
    p.add_argument("--pairs", type=int, default=320, help="the large draw")
    p.add_argument("--small", type=int, default=20, help="the small draw (its time is the fixed cost)")
    p.add_argument("--workers", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--src", nargs="+", type=Path, default=[REPO / "src"], help="source trees to time")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def _draw(src: Path, archive: Path, masks: Path | None, pairs: int, workers: int) -> float:
    env = os.environ | {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", ONE_DRAW, str(archive), str(Path(tmp) / "out"), str(pairs), str(workers)]
        done = subprocess.run([*cmd, str(masks or "")], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if not args.archive.is_dir():
        print(f"error: scene archive not found at {args.archive} (set RSIR_SHARED_DATA or --archive)", file=sys.stderr)
        return 2
    if args.pairs <= args.small:
        print("error: --pairs must be larger than --small", file=sys.stderr)
        return 2
    rows = []
    for rep in range(args.repeats):
        for src in args.src:
            for workers in args.workers:
                small = _draw(src, args.archive, args.masks, args.small, workers)
                large = _draw(src, args.archive, args.masks, args.pairs, workers)
                rate = (args.pairs - args.small) / (large - small)
                rows.append({"src": str(src), "workers": workers, "repeat": rep, "pairs_per_s": round(rate, 2)})
                rows[-1] |= {"small_s": round(small, 1), "large_s": round(large, 1)}
                if not args.json:
                    print(f"{src}  workers {workers}  run {rep}: {rate:.2f} pairs/s", flush=True)
    if args.json:
        print(json.dumps({"pairs": args.pairs, "small": args.small, "runs": rows}))
        return 0
    print("\n| source | workers | pairs/s (per run) |\n|---|---|---|")
    for src in args.src:
        for workers in args.workers:
            rates = [r["pairs_per_s"] for r in rows if r["src"] == str(src) and r["workers"] == workers]
            print(f"| {src} | {workers} | {' / '.join(f'{x:.1f}' for x in rates)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
