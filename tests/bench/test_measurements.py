"""The measurement functions behind `rsir bench`, on tiny inputs (the full run is `rsir bench`)."""

import json
import time

import numpy as np
import pytest

from rsir.bench.ann import compare, generate, headline, project, recall
from rsir.bench.selection import pool_of_size, selection_benchmark
from rsir.bench.throughput import extraction_throughput, forward_throughput, spread
from rsir.index.faiss_index import IndexParams


@pytest.fixture(scope="module")
def seeds() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 48)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_recall_counts_shared_neighbours_and_ignores_missing() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    got = np.array([[3, 2, 9], [-1, -1, 4]])
    assert recall(got, truth) == pytest.approx(3 / 6)
    assert recall(truth, truth) == 1.0


def test_generated_vectors_are_normalised_and_stay_near_their_seeds(seeds) -> None:
    rng = np.random.default_rng(1)
    x = generate(seeds, 500, rng, spread=0.3, chunk=128)
    assert x.shape == (500, 48) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    nearest_seed = (x @ seeds.T).max(1)
    unrelated = np.random.default_rng(2).normal(size=(500, 48))
    unrelated /= np.linalg.norm(unrelated, axis=1, keepdims=True)
    assert nearest_seed.mean() > (unrelated @ seeds.T).max(1).mean() + 0.3
    low = project(seeds, 16, rng)
    assert low.shape == (60, 16) and np.allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="up to"):
        project(seeds, 64, rng)


def test_compare_reports_exact_then_each_knob_setting(seeds) -> None:
    rng = np.random.default_rng(3)
    base, queries = generate(seeds, 3000, rng), generate(seeds, 20, rng)
    params = {"hnsw": IndexParams(index_type="hnsw", hnsw_m=8)}
    rows = compare(base, queries, ["hnsw"], params, sweeps={"hnsw": ({"ef_search": 10}, {"ef_search": 80})})
    exact, narrow, wide = rows
    assert (exact.index, exact.recall10, exact.bytes_per_item) == ("exact", 1.0, 4.0 * 48)
    assert "efS=10" in narrow.settings and "efS=80" in wide.settings
    assert wide.recall10 > 0.8 and wide.recall10 >= narrow.recall10 and wide.bytes_per_item > 4 * 48
    assert wide.speedup == pytest.approx(exact.ms_per_query / wide.ms_per_query, rel=0.15)
    dicts = [r.to_dict() for r in rows]
    good = [r for r in (narrow, wide) if r.recall10 >= 0.5]
    assert headline(dicts, 3000, 48, min_recall=0.5) == max(good, key=lambda r: r.speedup).to_dict()
    assert headline(dicts, 3000, 48, min_recall=1.01)["recall10"] == wide.recall10
    json.dumps([r.to_dict() for r in rows])


def test_pool_has_the_asked_size_without_labelled_pairs(seeds) -> None:
    from rsir.active.pool import Pairs

    labelled = Pairs.from_arrays([0, 1, 2], [5, 6, 7])
    pool = pool_of_size(seeds, 900, np.random.default_rng(0), labelled)
    assert len(pool) == 900 and len(pool.canonical()) == 900
    assert not pool.mask_in(labelled).any()


class _Slow:
    """A strategy that takes at least ``pause`` seconds per selection (then picks at random, in microseconds)."""

    def __init__(self, pause: float) -> None:
        self.pause, self.calls = pause, 0

    def select(self, ctx, budget, rng):
        from rsir.active.strategies import get_strategy

        self.calls += 1
        time.sleep(self.pause)
        return get_strategy("random").select(ctx, budget, rng)


def test_selection_benchmark_times_each_strategy(seeds) -> None:
    from rsir.active.strategies import STRATEGIES, register

    labels = [(str(i % 5),) for i in range(len(seeds))]
    slow = _Slow(0.2)
    register("test-slow", slow)
    try:
        rows = selection_benchmark(seeds, labels, [500], strategies=["anneal-mgue", "test-slow"], budget=10,
                                   n_labelled=40)  # fmt: skip
    finally:
        STRATEGIES.pop("test-slow")
    assert [r["strategy"] for r in rows] == ["(pool build)", "anneal-mgue", "test-slow"]
    assert rows[1]["pool"] == 500 and rows[1]["picked"] == 10 and rows[2]["picked"] == 10
    # the timed round is one selection: the pause once, not the warm-up call too, nor nothing at all
    assert slow.calls == 2 and 0.2 <= rows[2]["seconds"] < 0.39


def test_throughputs_on_a_few_real_images(demo_archive) -> None:
    import torch

    from rsir.models.encoders import load_encoder

    encoder = load_encoder()
    part = spread(demo_archive, 4)
    assert len(part) == 4 and len({it.labels for it in part.items}) == 4  # spread over classes
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    from rsir.models.runtime import set_runtime

    # eager torch: the pauses must run in every call (an ONNX export would trace the wrapper once instead)
    slow = set_runtime(_PausedEncoder(encoder, 0.1), "torch")
    try:
        start = time.perf_counter()
        forward = forward_throughput(slow, 8, batch_size=4)  # 1 untimed warm-up call + 2 timed batches of 4
        outer = time.perf_counter() - start
        assert slow.calls == 3
        # images/s of the timed calls: at most 8 images / 0.2 s of pauses, at least 8 / the whole call
        assert 8 / outer <= forward <= 8 / 0.2
        slow.calls = 0
        start = time.perf_counter()
        extract = extraction_throughput(demo_archive, slow, 4, batch_size=2)  # 2 batches through the real path
        outer = time.perf_counter() - start
        assert slow.calls == 2 and 4 / outer <= extract <= 4 / 0.2
    finally:
        torch.set_num_threads(before)


class _PausedEncoder:
    """The real encoder, each ``encode`` call made at least ``pause`` seconds long (a known minimum time)."""

    def __init__(self, encoder, pause: float) -> None:
        self._encoder, self.pause, self.calls = encoder, pause, 0

    def encode(self, x):
        self.calls += 1
        time.sleep(self.pause)
        return self._encoder.encode(x)

    def __getattr__(self, name: str):
        return getattr(self._encoder, name)
