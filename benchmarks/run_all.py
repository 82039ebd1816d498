"""Every benchmark, one after another, each printing its own table (`make bench`).

    .venv/bin/python benchmarks/run_all.py                      # all of them (hours on 2 CPU cores)
    .venv/bin/python benchmarks/run_all.py --only cbir itsr     # a selection
    .venv/bin/python benchmarks/run_all.py --list

Each benchmark resumes or reuses what an earlier run cached (features, checkpoints, campaign stores), so a
second run is much faster than the first. A failing benchmark is reported and the others still run; the
exit status is non-zero when any failed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RSIR = Path(sys.executable).with_name("rsir")
# name -> command; order = cheapest first, so a short session still gets the quick tables.
BENCHMARKS: dict[str, list[str]] = {
    "selection": [sys.executable, str(HERE / "bench_selection.py")],
    "initial-round": [sys.executable, str(HERE / "bench_initial_round.py")],
    "cbir": [sys.executable, str(HERE / "bench_cbir.py")],
    "scale": [str(RSIR), "bench", "--ray-images", "2000"],
    "synth": [sys.executable, str(HERE / "bench_synth.py")],
    "itsr": [sys.executable, str(HERE / "bench_itsr.py")],
    "anneal": [sys.executable, str(HERE / "bench_anneal.py")],
    "serve": [sys.executable, str(HERE / "bench_serve.py")],
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run these benchmarks only")
    p.add_argument("--list", action="store_true", help="print the benchmarks and their commands")
    args = p.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    if args.list:
        for name in names:
            print(f"{name:<10} {' '.join(BENCHMARKS[name])}")
        return 0
    failed = []
    for name in names:
        cmd = BENCHMARKS[name]
        if name == "serve" and shutil.which("wrk") is None:
            print(f"== {name}: skipped (needs wrk: apt-get install wrk)", flush=True)
            continue
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd)
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s\n", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
