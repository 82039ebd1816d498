"""`make bench` runs benchmarks/run_all.py: every command it names must exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_script_exists(benchmark_script):
    run_all = benchmark_script("run_all")
    for name, cmd in run_all.BENCHMARKS.items():
        scripts = [Path(c) for c in cmd if c.endswith(".py")]
        assert all(s.is_file() for s in scripts), name
    assert "bench" in run_all.BENCHMARKS["scale"]


def test_makefile_bench_target_calls_run_all():
    assert "benchmarks/run_all.py" in (ROOT / "Makefile").read_text()


def test_list_prints_the_selection():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--list", "--only", "itsr"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("itsr") and "bench_itsr.py" in out and "cbir" not in out
