"""Run one rsir command in this process, then record its peak RSS: the benchmark's child jobs
(``rsir.bench.runtime.index_job`` starts ``python -m rsir.cli.peak_rss RSS_FILE ARGS...``)."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from rsir.bench.runtime import own_peak_rss_mb


def main(rss_file: str, args: list[str]) -> None:
    """Run the rsir CLI with ``args``, then write this process's peak RSS (and its workers') to ``rss_file``."""
    from rsir.cli.main import app

    code = 1
    try:
        code = app(args, standalone_mode=False)  # returns a command's exit code instead of exiting
    finally:
        children = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
        Path(rss_file).write_text(json.dumps({"self": own_peak_rss_mb(), "children": children}))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
