"""The Milvus store (through Milvus Lite): exact parity with FAISS flat, filters inside Milvus, paging and
totals, the Python and CLI surfaces on a Milvus index."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_support import build, milvus_lite_or_skip  # noqa: E402

from rsir.index.filters import Filters

FILTERS = [
    Filters(),
    Filters(labels=("beach", "airplane", "harbor")),
    Filters(date_from=date(2020, 2, 1), date_to=date(2020, 4, 30)),
    Filters(date_to=date(2020, 3, 1)),
    Filters(bbox=(2.0, 3.0, 6.2, 9.0)),
    Filters(labels=("forest", "river", "denseresidential"), bbox=(0.0, 0.0, 5.0, 20.0), date_from=date(2020, 1, 20)),
]


@pytest.fixture(scope="module")
def pair(geo_demo, milvus_db: str, tmp_path_factory: pytest.TempPathFactory):
    """FAISS flat and Milvus FLAT indexes of the same demo vectors and manifest."""
    from rsir.index.searcher import SearchIndex

    manifest, vectors = geo_demo
    tmp = tmp_path_factory.mktemp("milvus-pair")
    faiss = build(tmp / "faiss", manifest, vectors)
    milvus = build(tmp / "milvus", manifest, vectors, store=f"milvus:{milvus_db}")
    return SearchIndex(faiss), SearchIndex(milvus)


def test_manifest_records_the_store(pair, milvus_db: str):
    _, milvus = pair
    rec = milvus.manifest.store
    assert rec["kind"] == "milvus" and rec["uri"] == milvus_db and rec["index"] == "FLAT"
    assert sorted(p.name for p in milvus.folder.iterdir()) == ["manifest.json"]  # no vectors held locally


def test_flat_milvus_ranks_every_query_as_faiss_flat(pair):
    """Every demo item as a query, with and without filters: identical top-10 ids, order and totals."""
    faiss, milvus = pair
    for f in FILTERS:
        for row in range(len(faiss)):
            q = faiss.vector(row)
            want, got = faiss.page(q, f, 0, 10, row), milvus.page(q, f, 0, 10, row)
            assert [r for r, _ in got.hits] == [r for r, _ in want.hits], (f, row)
            assert got.total == want.total, (f, row)
            assert [s for _, s in got.hits] == pytest.approx([s for _, s in want.hits], abs=1e-4)


def test_pages_join_and_totals_count_filtered_items(pair):
    faiss, milvus = pair
    row = milvus.row_of("airplane/airplane00")
    q = faiss.vector(row)
    f = Filters(labels=("beach", "airplane"))
    whole = milvus.page(q, f, 0, 16, row)
    assert whole.total == 15 and len(whole.hits) == 15  # 16 items, the query left out
    pages = [milvus.page(q, f, offset, 4, row) for offset in (0, 4, 8, 12)]
    assert [h for p in pages for h in p.hits] == whole.hits
    assert milvus.page(q, f, 100, 4, row).hits == [] and milvus.page(q, f, 100, 4, row).total == 15
    assert milvus.page(q, f, 0, 3, None).total == 16
    assert milvus.page(q, Filters(), 0, 3, None).hits[0][0] == row  # the query itself when not excluded


def test_filters_are_milvus_expressions():
    from rsir.index.milvus_store import expression

    expr = expression(Filters(labels=('a"b', "c\\d"), bbox=(1.0, 2.0, 3.0, 4.0)), 3, exclude_id="x'y\"z")
    assert expr.startswith("gen <= 3 and array_contains_any(labels, [")
    assert '"a\\"b"' in expr and '"c\\\\d"' in expr and 'id != "x\'y\\"z"' in expr
    assert "has_bbox == true and west <= 3.0" in expr


def test_unfiltered_batch_search_matches_faiss(pair):
    faiss, milvus = pair
    queries = np.concatenate([faiss.vector(r) for r in (0, 50, 100)])
    (_, want), (_, got) = faiss.search(queries, 10), milvus.search(queries, 10)
    np.testing.assert_array_equal(got, want)


def test_cli_index_and_search_on_milvus(demo_archive, demo_index: Path, tmp_path: Path):
    """`rsir index --store milvus:FILE.db` then `rsir search`: the same hits as the FAISS demo index."""
    from typer.testing import CliRunner

    from rsir.cli.main import app

    db = milvus_lite_or_skip(tmp_path / "cli.db")
    runner = CliRunner()
    args = ["index", str(demo_archive.root), "--out", str(tmp_path / "m"), "--store", f"milvus:{db}"]
    made = runner.invoke(app, args)
    assert made.exit_code == 0, made.output
    hits = {}
    for folder in (demo_index, tmp_path / "m"):
        out = runner.invoke(app, ["search", str(folder), "--id", "harbor/harbor00", "--label", "harbor", "--json"])
        assert out.exit_code == 0, out.output
        hits[folder] = [(h["id"], h["rank"]) for h in json.loads(out.stdout)["hits"]]
    assert hits[demo_index] == hits[tmp_path / "m"] and len(hits[demo_index]) == 7

    from rsir.index.manifest import IndexManifest
    from rsir.index.milvus_store import client

    first = IndexManifest.read(tmp_path / "m").store["collection"]
    again = runner.invoke(app, args)  # a rebuild swaps in a new collection and drops the old one
    assert again.exit_code == 0, again.output
    second = IndexManifest.read(tmp_path / "m").store["collection"]
    assert client(db).list_collections() == [second] and second != first


def test_bad_store_specs_are_refused(tmp_path: Path):
    from typer.testing import CliRunner

    from rsir.cli.main import app

    archive = str(Path(__file__).parents[2] / "src" / "rsir" / "data" / "demo" / "ucmerced")
    for spec, words in (("redis:x", "unknown store"), ("milvus:", "needs a location"), ("milvus:x.txt", "FILE.db")):
        out = CliRunner().invoke(app, ["index", archive, "--out", str(tmp_path / "x"), "--store", spec])
        assert out.exit_code == 2 and words in out.output and "Traceback" not in out.output, out.output
        assert not (tmp_path / "x").exists()


def test_a_client_loads_scipy_sparse_before_request_threads_can_race_on_it(tmp_path: Path):
    """pymilvus re-executes scipy.sparse, unlocked, on a request's first use: two first searches at once in the
    service deadlocked on its submodules' import locks (seen in CI). A fresh process, as a service worker is."""
    import subprocess

    milvus_lite_or_skip(tmp_path / "probe.db")
    code = (
        "import sys; from rsir.index.milvus_client import client; "
        "client(sys.argv[1]).list_collections(); print('scipy.sparse._bsr' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.db")], capture_output=True, text=True, timeout=120
    )
    assert run.stdout.strip().splitlines()[-1:] == ["True"], run.stderr[-2000:]
