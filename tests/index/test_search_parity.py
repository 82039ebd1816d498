"""One search path: `rsir search` (CLI), the Python API and the web service rank the same index identically,
for exact, IVF-PQ (re-ranked) and HNSW indexes, with and without filters, across pages."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_support import build, milvus_lite_or_skip  # noqa: E402

QUERIES = ("airplane/airplane00", "beach/beach03", "harbor/harbor05", "forest/forest01")
FILTERS = [
    {},
    {"label": ["beach", "airplane"]},
    {"date_from": "2020-02-01", "date_to": "2020-04-30"},
    {"bbox": "2,3,6.2,9"},
    {"label": ["harbor", "forest", "river"], "bbox": "0,0,5,20", "date_to": "2020-05-01"},
]


@pytest.fixture(scope="module")
def indexes(geo_demo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo vectors with dates and footprints, as flat, IVF-PQ (coarse 4-bit codes, so re-ranking
    changes the order) and HNSW FAISS indexes, and an exact Milvus (Lite) index."""
    manifest, vectors = geo_demo
    out = {}
    for kind in ("flat", "ivfpq", "hnsw"):
        folder = tmp_path_factory.mktemp(f"parity-{kind}") / "index"
        out[kind] = build(folder, manifest, vectors, kind, nbits=4, hnsw_m=8, ef_search=16)
    try:
        db = milvus_lite_or_skip(tmp_path_factory.mktemp("parity-milvus") / "store.db")
        out["milvus"] = build(db.replace("store.db", "index"), manifest, vectors, "flat", f"milvus:{db}")
    except pytest.skip.Exception:
        pass
    return out


def _cli_args(f: dict) -> list[str]:
    args = []
    for lab in f.get("label", []):
        args += ["--label", lab]
    for key in ("date_from", "date_to", "bbox"):
        if key in f:
            args += [f"--{key.replace('_', '-')}", f[key]]
    return args


def _cli(folder: Path, qid: str, f: dict, k: int, offset: int) -> tuple[int, list[str]]:
    from typer.testing import CliRunner

    from rsir.cli.main import app

    result = CliRunner().invoke(
        app, ["search", str(folder), "--id", qid, "-k", str(k), "--offset", str(offset), "--json", *_cli_args(f)]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    return out["total"], [h["id"] for h in out["hits"]]


def _python(folder: Path, qid: str, f: dict, k: int, offset: int) -> tuple[int, list[str]]:
    from rsir.cbir.indexing import query_vector, search_page
    from rsir.index.filters import Filters
    from rsir.index.searcher import SearchIndex

    idx = SearchIndex(folder)
    filters = Filters(
        tuple(sorted(f.get("label", []))),
        date.fromisoformat(f["date_from"]) if "date_from" in f else None,
        date.fromisoformat(f["date_to"]) if "date_to" in f else None,
        tuple(float(v) for v in f["bbox"].split(",")) if "bbox" in f else None,
    )
    page = search_page(idx, query_vector(idx, item_id=qid), k, filters=filters, offset=offset, skip_id=qid)
    return page.total, [h.id for h in page.hits]


def _service(client, qid: str, f: dict, k: int, offset: int) -> tuple[int, list[str]]:
    response = client.get("/api/search/id", params={"id": qid, "k": k, "offset": offset, **f})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["total"], [h["id"] for h in body["hits"]]


@pytest.mark.parametrize("kind", ["flat", "ivfpq", "hnsw", "milvus"])
def test_cli_python_and_service_rank_alike(indexes: dict[str, Path], kind: str, tmp_path: Path):
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app

    if kind not in indexes:
        pytest.skip("Milvus Lite cannot start here")
    folder = Path(indexes[kind])
    with TestClient(create_search_app(folder, cache_dir=tmp_path)) as client:
        for qid in QUERIES:
            for f in FILTERS:
                for k, offset in ((10, 0), (5, 3)):
                    want = _python(folder, qid, f, k, offset)
                    assert want[1], (kind, qid, f)  # every case returns something to compare
                    assert _service(client, qid, f, k, offset) == want, (kind, qid, f, offset)
                    assert _cli(folder, qid, f, k, offset) == want, (kind, qid, f, offset)


def test_ivfpq_pages_are_reranked_exactly(indexes: dict[str, Path]):
    """The IVF-PQ index's pages, filtered or not, are ordered by exact scores (the re-rank ran)."""
    from rsir.index.filters import Filters
    from rsir.index.searcher import SearchIndex

    idx = SearchIndex(indexes["ivfpq"])
    vectors = np.asarray(idx.vectors)
    for filters in (Filters(), Filters(labels=("beach", "airplane"))):
        page = idx.page(vectors[:1], filters, 0, 10, exclude_row=0)
        rows = [r for r, _ in page.hits]
        exact = vectors[rows] @ vectors[0]
        assert [s for _, s in page.hits] == pytest.approx(exact.tolist(), abs=1e-5)
        assert list(exact) == sorted(exact, reverse=True)


def test_search_cli_refuses_bad_filters(indexes: dict[str, Path]):
    from typer.testing import CliRunner

    from rsir.cli.main import app

    for args, words in (
        (["--bbox", "1,2,3"], "--bbox"),
        (["--bbox", "5,0,1,1"], "--bbox"),
        (["--date-from", "2020-13-01"], "--date-from"),
        (["--label", "no-such-label"], "unknown label"),
    ):
        result = CliRunner().invoke(app, ["search", str(indexes["flat"]), "--id", QUERIES[0], *args])
        assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output
