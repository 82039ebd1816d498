import json
import subprocess
import sys

import pytest

KEYS = {"extract_ratio", "ann_speedup_1e6", "ann_recall10_1e6", "select_seconds_1e6_pairs", "peak_rss_mb"}
KEYS |= {"runtime_speedup", "index_speedup", "index_over_forward", "index_rss_torch_mb", "index_rss_onnx_mb"}


@pytest.mark.slow  # about a minute on 2 free cores, more on a busy machine
def test_quick_bench_prints_the_json_keys(tmp_path) -> None:
    from rsir.data.demo import demo_archive_path

    out = subprocess.run(
        [sys.executable, "-m", "rsir.cli.main", "bench", "--quick", "--json", "--archive", str(demo_archive_path())],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    report = json.loads(out.stdout)
    assert set(report) >= KEYS and report["quick"] is True
    assert 0.3 < report["extract_ratio"] < 2.0 and report["peak_rss_mb"] > 100
    assert report["runtime_speedup"] > 1 and report["runtime"]["repeats"][0]["index_onnx"] > 0
    assert {r["index"] for r in report["ann"]} == {"exact", "ivfpq", "hnsw"}
    assert all(r["recall10"] > 0.8 for r in report["ann"] if "rerank=0" not in r["settings"])
    assert {r["strategy"] for r in report["selection"]} >= {"anneal-bcgue", "anneal-mgue"}
    assert report["ann_speedup_1e6"] is None  # a quick run does not reach 10^6 vectors and says so
