"""Eager torch vs ONNX Runtime on this machine: the runtime section of `rsir bench`, alone.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_runtime.py --threads 2 --repeats 2 --json-out r.json

Forward-only images/s on pre-decoded UC Merced batches at 224 px (default encoder), and whole `rsir index`
jobs over the archive (2,100 images), one child process per runtime, back to back per repeat; prints the
`rsir bench` table. `rsir bench` runs the same section with its other measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", type=Path, default=None, help="benchmark archive (default: shared UC Merced)")
    p.add_argument("--index-archive", default="", help="archive for `rsir index` (default: --archive)")
    p.add_argument("--index-images", type=int, default=0, help="index a copy of this many images (0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--n-images", type=int, default=256, help="forward-only images per repeat")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `rsir bench`: before torch loads
    from rsir.bench.run import BenchConfig, run_bench
    from rsir.cli.bench import render

    config = BenchConfig(
        sections=("runtime",),
        threads=args.threads,
        runtime_repeats=args.repeats,
        n_images=args.n_images,
        index_archive=args.index_archive,
        index_images=args.index_images,
    )
    report = run_bench(archive=args.archive, config=config)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1, default=str))
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
