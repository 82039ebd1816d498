"""bench_synth.py times real draws of the v2 generator (tiny ones here) and refuses bad sizes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from shared_data import shared_or_skip


def _archive(root: Path) -> Path:
    ucm = shared_or_skip("ucmerced")
    for label in ("agricultural", "forest", "river"):
        (root / label).mkdir(parents=True)
        for f in sorted((ucm / label).iterdir())[:10]:
            shutil.copyfile(f, root / label / f.name)
    return root


def test_pairs_per_second_for_each_worker_count(benchmark_script, tmp_path: Path, capsys):
    bench = benchmark_script("bench_synth")
    archive = str(_archive(tmp_path / "scenes"))
    assert bench.main(["--archive", archive, "--pairs", "14", "--small", "10", "--workers", "2", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["workers"] for r in runs] == [2] and all(r["pairs_per_s"] > 0 for r in runs)
    assert bench.main(["--archive", archive, "--pairs", "10", "--small", "20"]) == 2
    assert bench.main(["--archive", str(tmp_path / "missing")]) == 2
