"""Fixtures of the search-app tests: the demo index served in-process, a copy carrying dates and bounding
boxes, a tiny text-ITSR checkpoint trained on a semi-synthetic set made from the demo scenes, and a real
uvicorn server on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

DEMO_ID = "airplane/airplane00"


@pytest.fixture(scope="session")
def search_app(demo_index: Path, tmp_path_factory: pytest.TempPathFactory):
    from rsir.app.search import create_search_app

    return create_search_app(demo_index, cache_dir=tmp_path_factory.mktemp("thumbs"))


@pytest.fixture(scope="session")
def client(search_app):
    from fastapi.testclient import TestClient

    with TestClient(search_app) as c:
        yield c


@pytest.fixture(scope="session")
def geo_index(demo_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo index with meta.date (one day apart, in id order) and meta.bbox (a 1-degree grid) per item."""
    from rsir.index.faiss_index import SearchIndex, save_index
    from rsir.index.manifest import IndexManifest

    src = SearchIndex(demo_index)
    m = src.manifest
    meta = [
        {
            **m.meta[i],
            "date": (date(2020, 1, 1) + timedelta(days=i)).isoformat(),
            "bbox": [i % 10, i // 10, i % 10 + 0.5, i // 10 + 0.5],
        }
        for i in range(len(m.ids))
    ]
    out = tmp_path_factory.mktemp("geo-index") / "index"
    manifest: IndexManifest = replace(m, meta=meta)
    save_index(out, src.index, np.asarray(src.vectors), manifest)
    return out


@pytest.fixture(scope="session")
def itsr_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch, 32-d GFF model on 20 semi-synthetic pairs cut from the demo scenes (test split: 4 pairs).
    Untrained in all but name: the tests check the service's wiring, not the model's quality."""
    from rsir.data.demo import demo_archive_path
    from rsir.data.synth import make_synthetic
    from rsir.itsr.pipeline import train
    from rsir.train.itsr import ITSRTrainConfig

    tmp = tmp_path_factory.mktemp("itsr")
    make_synthetic(demo_archive_path(), tmp / "synth", pairs=20, seed=0)
    config = ITSRTrainConfig(fusion="gff-concat+diff", epochs=1, dim=32, batch_size=16)
    train(tmp / "synth", tmp / "ckpt", config, progress=False)
    return tmp / "ckpt"


@pytest.fixture(scope="session")
def itsr_app(demo_index: Path, itsr_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    from rsir.app.search import create_search_app

    return create_search_app(demo_index, itsr_checkpoint, cache_dir=tmp_path_factory.mktemp("thumbs-itsr"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real uvicorn server in a thread (the same server `rsir serve` runs), stopped at teardown."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(itsr_app) -> Iterator[Server]:
    with Server(itsr_app) as server:
        yield server
