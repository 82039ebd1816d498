"""Fixtures of text <-> scene retrieval: a few UC Merced demo scenes with their REAL UCM-Captions sentences.

The demo archive's scenes are all in UCM-Captions' train split, so the tiny set re-splits them (per class:
scenes 0-4 train, 5 val, 6-7 test); the sentences are the real file's. Skipped when the shared data is absent.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("airplane", "beach", "forest", "harbor")


def _shared_captions() -> Path:
    root = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
    path = root / "ucm-captions" / "dataset.json"
    if not path.is_file():
        pytest.skip(f"UCM-Captions not found at {path} (set RSIR_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny_captions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(caption JSON, image folder): 4 classes x 8 demo scenes, UCM `N.tif` names, real sentences."""
    from rsir.data.captions import UCM_CLASSES
    from rsir.data.demo import demo_archive_path

    entries = json.loads(_shared_captions().read_text())["images"]
    out = tmp_path_factory.mktemp("ucm-tiny")
    images = out / "images"
    keep = []
    for cls in CLASSES:
        shutil.copytree(demo_archive_path() / cls, images / cls)
        for nn in range(8):
            entry = dict(entries[100 * UCM_CLASSES.index(cls) + nn])
            entry["split"] = "train" if nn < 5 else "val" if nn == 5 else "test"
            keep.append(entry)
    path = out / "dataset.json"
    path.write_text(json.dumps({"images": keep, "dataset": "ucm"}))
    return path, images


@pytest.fixture(scope="session")
def tiny_model(tiny_captions, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen-encoder text <-> scene checkpoint trained for a few epochs on the tiny set (frozen: searches
    read the index's own vectors)."""
    from rsir.text.pipeline import text_config, train

    captions, images = tiny_captions
    out = tmp_path_factory.mktemp("text-model") / "ckpt"
    train(captions, images, out, text_config(epochs=3, batch_size=8, seed=0, finetune=0), progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_index(tiny_captions, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat index of the tiny set's 32 scenes with the default encoder."""
    from rsir.cbir.indexing import index_archive
    from rsir.cbir.space import Space
    from rsir.data.archives import open_archive

    out = tmp_path_factory.mktemp("tiny-index") / "index"
    index_archive(open_archive(tiny_captions[1]), out, Space.load())
    return out
