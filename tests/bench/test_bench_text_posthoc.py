"""benchmarks/bench_text_posthoc.py: its levers score what they name (random embeddings, no checkpoint)."""

from __future__ import annotations

import numpy as np


def _unit(rng, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_levers_and_table(benchmark_script):
    from rsir.text.bridge import Bridge, GalleryBridge, Memory
    from rsir.text.pipeline import similarity_scores

    bench = benchmark_script("bench_text_posthoc")
    rng = np.random.default_rng(0)
    memory = Memory(_unit(rng, 6), _unit(rng, 10), np.array([[i % 6, i] for i in range(10)]))
    images, text = _unit(rng, 5), _unit(rng, 15)
    caption_image, captions = np.repeat(np.arange(5), 3), [f"c{i % 7}" for i in range(15)]
    manifest = {"gallery_expansion": {"k": 0, "weight": 0.0}, "querybank": {"beta": 0.0}}
    got = bench.levers(text, caption_image, captions, {"as trained": images, "256 px": images[::-1]}, memory, manifest)
    plain = similarity_scores(text @ images.T, caption_image, captions)
    assert got["the checkpoint, as is"] == plain  # expansion and querybank off in this manifest: plain cosine
    over = GalleryBridge(Bridge(), memory, images)
    sim = text @ images.T
    both = similarity_scores(sim + over.i2t(text), caption_image, captions, sim + over.t2i(text))
    assert got["bridge, both (-b)"] == both
    assert {"256 px", "256 px + bridge"} <= set(got) and len(got) == 6 + len(bench.BETAS) + 2
    result = {"mR": {"val": {k: [v["mR"], v["mR"]] for k, v in got.items()}}}
    lines = bench.table(result).splitlines()
    assert lines[0] == "| lever | val mR (per seed) |" and len(lines) == 2 + len(got)
