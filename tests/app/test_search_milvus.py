"""`rsir serve --workers 2` on a Milvus Lite store: the workers share one store (served once from a local
Milvus Lite server) instead of each loading a copy, and answer as the FAISS index does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
QUERIES = ["airplane/airplane00", "beach/beach02", "harbor/harbor04", "forest/forest06", "river/river01"]


@pytest.fixture(scope="module")
def milvus_index(demo_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rsir.index.faiss_index import IndexParams
    from rsir.index.milvus_store import MilvusBackend, client
    from rsir.index.searcher import SearchIndex

    tmp = tmp_path_factory.mktemp("serve-milvus")
    try:
        client(str(tmp / "store.db")).list_collections()
    except Exception as err:
        pytest.skip(f"Milvus Lite cannot start here: {err}")
    src = SearchIndex(demo_index)
    backend = MilvusBackend()
    manifest = src.manifest
    manifest.store = backend.record(str(tmp / "store.db"), tmp / "index")
    backend.build(tmp / "index", np.asarray(src.vectors), manifest, IndexParams())
    from rsir.index.milvus_store import release

    release(str(tmp / "store.db"))  # the server's own Milvus Lite process must be able to hold the file
    return tmp / "index"


def _wait(url: str, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rsir serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("rsir serve did not answer in time")


def test_two_workers_share_one_milvus_lite_store(milvus_index: Path, demo_index: Path):
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rsir.cli.main", "serve", str(milvus_index), "--workers", "2", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc)
        params = [{"id": q, "k": 10, **({"label": ["beach", "river"]} if i % 2 else {})} for i, q in enumerate(QUERIES)]
        with ThreadPoolExecutor(8) as pool:  # enough concurrent requests that both workers answer some
            pages = list(pool.map(lambda p: httpx.get(f"{url}/api/search/id", params=p, timeout=60), params * 4))
        with TestClient(create_search_app(demo_index)) as faiss:
            want = [faiss.get("/api/search/id", params=p).json() for p in params]
        for i, page in enumerate(pages):
            assert page.status_code == 200, page.text
            got, expected = page.json(), want[i % len(params)]
            assert [h["id"] for h in got["hits"]] == [h["id"] for h in expected["hits"]]
            assert got["total"] == expected["total"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # the process group this test started: uvicorn, workers, Milvus Lite
        try:
            log = proc.communicate(timeout=30)[1].decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log = proc.communicate()[1].decode(errors="replace")
    # both workers opened the store (one Milvus Lite file cannot be opened by two processes on its own)
    assert log.count("Application startup complete") == 2 and "Traceback" not in log, log[-3000:]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
