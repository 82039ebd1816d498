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
    assert bench._args(["--seeds", "0"]).variants == ["frozen-x-q", "ft1-aug-10ep-x-q"]
    # the default's row trains with `rsir text train`'s defaults; rows published before keep their settings
    assert bench.VARIANTS["ft1-aug-10ep-x-q"] == ({"finetune": 1, "epochs": 10}, {"augment": True})
    assert not bench.VARIANTS["ft1-aug-10ep-x"][1]["querybank"].active
    # -b rows turn the training-memory bridge on (off by default: docs/benchmarks.md, fourth pass)
    assert bench.VARIANTS["ft1-aug-10ep-x-q-b"][1]["bridge"].active and "bridge" not in bench.VARIANTS["frozen-x-q"][1]


def test_ensemble_rows_and_zscore(benchmark_script):
    import numpy as np

    bench = benchmark_script("bench_text")
    sim = np.array([[1.0, 3.0], [5.0, 7.0]])
    z = bench.zscore(sim)
    assert np.isclose(z.mean(), 0.0) and np.isclose(z.std(), 1.0)
    assert np.array_equal(np.argsort(z, 1), np.argsort(sim, 1))  # a common scale, the same ranking
    scores = {d: {"r@1": 10.0, "r@5": 50.0, "r@10": 80.0} for d in ("t2i", "i2t", "t2i_dup_aware")}
    table = bench.table({"rows": [bench._row("a + b ensemble", [{**scores, "mR": 46.0}])]})
    assert table.splitlines()[-1].startswith("| rsir a + b ensemble |")  # no "(1 seeds)" on an ensemble
    assert "control-shuffled-train" in bench.VARIANTS and bench.VARIANTS["frozen-60ep"][1]["expansion"].k == 0
