"""`make bench` runs benchmarks/run_all.py: every command it names must exist."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_script_exists(benchmark_script):
    run_all = benchmark_script("run_all")
    for name, cmd in run_all.BENCHMARKS.items():
        scripts = [Path(c) for c in cmd if c.endswith(".py")]
        assert all(s.is_file() for s in scripts), name
    assert "bench" in run_all.BENCHMARKS["scale"]


def test_makefile_bench_target_calls_run_all(benchmark_script):
    """`make bench` (its commands as make would run them, printed by `make -n`) ends by running
    benchmarks/run_all.py with the venv's python; that command, run here with --list, lists every benchmark."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    printed = subprocess.run([make, "-n", "-C", str(ROOT), "bench"], capture_output=True, text=True, check=True)
    commands = [c.strip() for line in printed.stdout.splitlines() for c in line.split("&&") if c.strip()]
    commands = [c for c in commands if not c.startswith("make")]
    last = shlex.split(commands[-1])
    assert Path(last[0]).name.startswith("python") and last[1] == "benchmarks/run_all.py", commands
    listed = subprocess.run([sys.executable, *last[1:], "--list"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(benchmark_script("run_all").BENCHMARKS)


def test_list_prints_the_selection():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--list", "--only", "itsr"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("itsr") and "bench_itsr.py" in out and "cbir" not in out
