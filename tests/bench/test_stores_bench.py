"""The store benchmark at a tiny size: FAISS IVF-PQ and Milvus Lite rows with recall against exact search,
and append vs rebuild through the stores' own append."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_store_benchmark_rows(demo_index: Path, tmp_path: Path):
    from rsir.bench.stores import store_benchmark
    from rsir.index.milvus_store import MilvusUnavailable, client
    from rsir.index.searcher import SearchIndex

    try:
        client(str(tmp_path / "probe.db")).list_collections()
    except MilvusUnavailable as err:
        pytest.skip(f"Milvus Lite cannot start here: {err}")
    seeds = np.asarray(SearchIndex(demo_index).vectors)
    out = store_benchmark(seeds, n=2000, dim=64, n_queries=30, append_n=2000)
    stores = {r["store"]: r for r in out["stores"]}
    assert set(stores) == {"faiss", "milvus-lite"} and stores["milvus-lite"]["index"] == "hnsw"
    for row in stores.values():
        assert row["n"] == 2000 and row["dim"] == 64 and row["build_s"] > 0
        assert row["qps_1"] > 0 and row["qps_16"] > 0
        assert row["recall10"] >= 0.9  # HNSW and re-ranked IVF-PQ at 2,000 vectors are near exact
    for row in out["append"]:
        assert row["n"] == 2000 and row["added"] == 200 and row["append_s"] > 0
        assert row["append_over_rebuild"] == pytest.approx(row["append_s"] / row["rebuild_s"], rel=0.05, abs=0.002)


def test_the_stores_section_runs_alone(demo_archive, tmp_path: Path):
    """`rsir bench --sections stores` computes the seed embeddings it needs (it once crashed without them)."""
    from dataclasses import replace

    from rsir.bench.run import QUICK, run_bench
    from rsir.index.milvus_store import MilvusUnavailable, client

    try:
        client(str(tmp_path / "probe.db")).list_collections()
    except MilvusUnavailable as err:
        pytest.skip(f"Milvus Lite cannot start here: {err}")
    config = replace(QUICK, sections=("stores",), milvus_n=1000, append_n=1000)
    report = run_bench(archive=Path(demo_archive.root), config=config)
    assert 0.9 <= report["milvus_recall10"] <= 1.0 and "extract_ratio" not in report
