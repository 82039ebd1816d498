"""benchmarks/bench_text.py: its table puts rsir's rows next to the published ones (no training here)."""

from __future__ import annotations


def test_table_lists_published_rows_and_ours(benchmark_script):
    bench = benchmark_script("bench_text")
    scores = {d: {"r@1": 10.0, "r@5": 50.0, "r@10": 80.0} for d in ("t2i", "i2t", "t2i_dup_aware")}
    runs = [{**scores, "mR": 46.0}, {**scores, "mR": 48.0}]
    table = bench.table({"rows": [bench._row("frozen", runs)]})
    lines = table.splitlines()
    assert len(lines) == 2 + len(bench.PUBLISHED) + 1
    assert "RemoteCLIP" in table and "| 56.36 |" in table
    assert lines[-1].startswith("| rsir frozen (2 seeds) |") and "47.00 ± 1.00" in lines[-1]
    assert bench._args(["--seeds", "0"]).variants == ["frozen-60ep", "ft1-aug-10ep"]
