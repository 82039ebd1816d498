"""benchmarks/bench_initial_round.py on the demo archive: one row per (budget, strategy), shares in [0, 1]."""


def test_initial_round_benchmark_on_the_demo(benchmark_script, demo_index) -> None:
    bench = benchmark_script("bench_initial_round")
    rows = bench.run(2, [20], ["neighbours", "mixed"], ["demo"])
    assert [(r["archive"], r["strategy"]) for r in rows] == [("demo", "neighbours"), ("demo", "mixed")]
    assert all(0.0 <= r["min_share"] <= r["similar_share"] <= 1.0 and r["items"] == 168 for r in rows)
    assert rows[1]["similar_share"] > rows[0]["similar_share"]
