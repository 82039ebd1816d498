"""The Sentinel-2 scene-archive builder of the second text-ITSR benchmark: spectral rules and tiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _bands(green: float, red: float, nir: float, shape=(64, 64)) -> dict[str, np.ndarray]:
    return {b: np.full(shape, v, np.float32) for b, v in (("B02", 0.05), ("B03", green), ("B04", red), ("B08", nir))}


def test_spectral_rules_give_the_expected_classes(benchmark_script):
    s2 = benchmark_script("s2_scene_archive")
    cases = {
        "water": (0.08, 0.05, 0.02),  # green above NIR: NDWI > 0
        "bare fields": (0.10, 0.15, 0.18),  # NDVI ~ 0.09
        "green crops": (0.08, 0.04, 0.40),  # NDVI 0.82, bright NIR
        "dense forest": (0.04, 0.02, 0.20),  # NDVI 0.82, dark NIR
        "fallow fields": (0.08, 0.10, 0.25),  # NDVI 0.43, bright
        "woodland": (0.05, 0.06, 0.15),  # NDVI 0.43, dark
    }
    for name, (g, r, n) in cases.items():
        assert s2.CLASSES[int(s2.pixel_classes(_bands(g, r, n))[0, 0])] == name


def test_tiles_take_their_majority_class_only_when_pure_enough(benchmark_script, tmp_path: Path):
    s2 = benchmark_script("s2_scene_archive")
    cls = np.zeros((64, 96), np.int64)
    cls[:32, 32:64] = 2  # one pure crop tile
    cls[32:, 64:] = np.where(np.arange(32)[None, :] < 12, 2, 4)  # 37.5% crops / 62.5% woodland
    labels = s2.tile_labels(cls, 32, purity=0.7)
    assert labels.tolist() == [[0, 2, 0], [0, 0, -1]]
    rgb = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    counts = s2.write_archive(tmp_path, rgb, labels, 32, cap=2, seed=0)
    assert counts["water"] == 2 and counts["green crops"] == 1 and counts["woodland"] == 0
    tile = tmp_path / "green crops" / "greencrops_00_01.png"
    assert np.array_equal(np.asarray(Image.open(tile)), rgb[:32, 32:64])
