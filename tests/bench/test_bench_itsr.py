"""bench_itsr.py's aggregation and targets (changed-pair headline, controls) on hand-made runs."""

from __future__ import annotations

import pytest


def _run(fusion: str, seed: int, chg10: float, shuffled: float | None = None, chg_mr: float = 10.0) -> dict:
    block = {"t2i": {"r@1": 1.0, "r@5": 2.0, "r@10": chg10}, "i2t": {"r@1": 0, "r@5": 0, "r@10": 3.0}, "mR": chg_mr}
    run = {
        "fusion": fusion,
        "seed": seed,
        "train_seconds": 5.0,
        "t2i": {"r@1": 0, "r@5": 0, "r@10": chg10 / 2},
        "i2t": {"r@1": 0, "r@5": 0, "r@10": 1.0},
        "mR": chg_mr / 2,
        "t2i_dup": {"r@1": 0, "r@5": 0, "r@10": 50.0},
        "changed": block,
        "unchanged": {**block, "t2i_dup": {"r@1": 0, "r@5": 0, "r@10": 99.0}},
    }
    if shuffled is not None:
        run["shuffled"] = {"changed": {**block, "t2i": {"r@1": 0, "r@5": 0, "r@10": shuffled}}}
    return run


def test_targets_use_the_changed_pair_headline_and_the_controls(benchmark_script):
    bench = benchmark_script("bench_itsr")
    runs = [
        _run("after", 0, 10.0),
        _run("after", 1, 12.0),
        _run("before", 0, 4.0, 4.0),
        _run("before", 1, 6.0, 6.0),
        _run("gff-concat+diff", 0, 30.0, 20.0, chg_mr=20.0),
        _run("gff-concat+diff", 1, 34.0, 22.0, chg_mr=22.0),
        _run("tff", 0, 40.0, 10.0, chg_mr=25.0),
        _run("tff", 1, 44.0, 14.0, chg_mr=27.0),
    ]
    agg = bench.aggregate(runs)
    assert agg["tff"]["changed t2i r@10"] == (42.0, 2.0)  # mean, std over seeds
    assert agg["tff"]["shuffled changed t2i r@10"] == (12.0, 2.0)
    assert "shuffled changed t2i r@10" not in agg["after"]
    assert agg["after"]["unchanged t2i_dup r@10"] == (99.0, 0.0)
    t = bench.targets(agg, gallery=500)
    assert t["headline"] == "changed t2i r@10" and t["best"] == "tff"
    assert t["chance_r@10"] == 2.0 and t["best_over_chance"] == pytest.approx(21.0) and t["best>=10x_chance"]
    assert t["best_minus_single_date"] == pytest.approx(42.0 - 11.0) and t["beats_single_date_by_15"]
    assert t["shuffle_drop"] == pytest.approx(30.0) and t["shuffle_drop>=15"]
    assert t["tff_minus_gff-concat+diff_changed_mR"] == pytest.approx(5.0)
    table = bench.table(agg)
    assert table.count("\n") == 2 + len(agg) - 1 and "42.0 ± 2.0" in table


def test_targets_compare_the_change_gate_with_the_best_gff_too(benchmark_script):
    bench = benchmark_script("bench_itsr")
    runs = [
        _run("after", 0, 10.0),
        _run("gff-concat+diff", 0, 30.0, 20.0, chg_mr=20.0),
        _run("gate", 0, 48.0, 12.0, chg_mr=26.0),
    ]
    t = bench.targets(bench.aggregate(runs), gallery=500)
    assert t["best"] == "gate" and t["shuffle_drop"] == pytest.approx(36.0)
    assert t["gate_minus_gff-concat+diff_changed_mR"] == pytest.approx(6.0)


def test_eval_dataset_must_come_from_the_same_scene_split(benchmark_script):
    bench = benchmark_script("bench_itsr")
    base = {
        "source_archive": "/data/ucmerced",
        "seed": 0,
        "synth_version": 2,
        "scenes": {"train": 1452, "val": 208, "test": 416},
        "near_duplicates_removed": [{"scene": "forest/3", "label": "forest"}],
        "dedup_bits": 4,
        "pairs": {"train": 1750, "val": 250, "test": 500},
    }
    bigger = {**base, "pairs": {"train": 4900, "val": 700, "test": 1400}, "siblings": {"share": 0.5}}
    assert bench.same_scene_split(bigger, base)  # more pairs / siblings: the same scenes per split
    assert not bench.same_scene_split({**bigger, "seed": 1}, base)
    assert not bench.same_scene_split({**bigger, "dedup_bits": -1}, base)
    assert not bench.same_scene_split({**bigger, "source_archive": "/data/s2"}, base)


def test_train_pairs_refuses_a_given_dataset(benchmark_script, tmp_path, capsys):
    bench = benchmark_script("bench_itsr")
    assert bench.main(["--train-pairs", "7000", "--dataset", str(tmp_path), "--threads", "0"]) == 2
    assert "--train-pairs" in capsys.readouterr().err
