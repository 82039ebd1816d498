"""Text-ITSR training under DDP on 2 CPU processes (gloo): ranks stay identical, rank 0 writes the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsir.data.synth import make_synthetic
from rsir.itsr.pipeline import evaluate_checkpoint, train
from rsir.train import distributed
from rsir.train.itsr import ITSRTrainConfig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("itsr-ddp")
    rng = np.random.default_rng(0)
    for c, label in enumerate(("agricultural", "forest", "storagetanks", "river")):
        (tmp / "scenes" / label).mkdir(parents=True)
        for i in range(8):
            img = np.clip(np.array([50 + 50 * c, 200 - 40 * c, 90 + 30 * c]) + rng.normal(0, 25, (32, 32, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(tmp / "scenes" / label / f"{label}{i:02d}.png")
    make_synthetic(tmp / "scenes", tmp / "synth", pairs=60, seed=0, progress=False)
    return tmp / "synth"


def test_ranks_train_the_same_model_and_rank0_saves(dataset: Path, tmp_path: Path):
    config = ITSRTrainConfig(fusion="gff-concat+diff", dim=32, epochs=3, batch_size=8, seed=1)
    # Also caches the features, so the ranks only read them.
    single = train(dataset, tmp_path / "single", config, progress=False)
    out = tmp_path / "ddp"
    rank0, rank1 = distributed.run_parallel(train, 2, dataset, out, config, progress=False)
    # Every rank validated its own copy after every epoch: identical scores mean identical weights...
    assert rank0["history"] == rank1["history"] and len(rank0["history"]) == 3
    # ...and they did not each run the single-process loop: each took half the batches, gradients averaged.
    assert [h["loss"] for h in rank0["history"]] != [h["loss"] for h in single["history"]]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["epoch"] == rank0["best_epoch"]
    # The checkpoint rank 0 wrote reproduces the best validation scores.
    assert evaluate_checkpoint(out, dataset, "val", progress=False)["mR"] == pytest.approx(rank0["val"]["mR"])
