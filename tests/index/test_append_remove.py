"""Growing and shrinking an index (FAISS and Milvus stores): `--append` embeds only the new items and keeps
what is there, a killed append leaves a consistent index and resumes, items are removed by id."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_support import build, milvus_lite_or_skip  # noqa: E402

from rsir.index.filters import Filters  # noqa: E402

QUERIES = ("airplane/airplane00", "harbor/harbor03", "forest/forest05")
STORES = ["faiss-flat", "faiss-ivfpq", "faiss-hnsw", "milvus-flat"]


def _store(case: str, tmp_path: Path) -> tuple[str, str]:
    where, kind = case.split("-")
    return (f"milvus:{milvus_lite_or_skip(tmp_path / 'store.db')}" if where == "milvus" else "faiss"), kind


def _build_part(demo_index: Path, out: Path, case: str, tmp_path: Path, every: int | None = 10) -> list[str]:
    """An index of the demo vectors without every ``every``-th item (built from the stored vectors: only
    what the tests append gets embedded); returns the missing ids."""
    from dataclasses import replace

    from rsir.index.searcher import SearchIndex

    store, kind = _store(case, tmp_path)
    src = SearchIndex(demo_index)
    m, n = src.manifest, len(src.manifest.ids)
    keep = [i for i in range(n) if every is None or i % every != 3]
    part = replace(
        m,
        ids=[m.ids[i] for i in keep],
        paths=[m.paths[i] for i in keep],
        labels=[m.labels[i] for i in keep],
        meta=[m.meta[i] for i in keep],
    )
    build(out, part, np.asarray(src.vectors)[keep], kind, store, nbits=4, hnsw_m=8)
    return [m.ids[i] for i in range(n) if i not in set(keep)]


def _top(folder: Path, qid: str, k: int = 10, filters: Filters = Filters()) -> dict[str, float]:
    from rsir.cbir.indexing import query_vector, search_page
    from rsir.index.searcher import SearchIndex

    idx = SearchIndex(folder)
    page = search_page(idx, query_vector(idx, item_id=qid), k, filters=filters, skip_id=qid)
    return {h.id: round(h.score, 4) for h in page.hits}


def _embedded_ids(monkeypatch) -> list[str]:
    """Record which items the indexing code sends to the encoder."""
    from rsir.cbir import indexing

    seen: list[str] = []
    real = indexing.embed_with

    def spy(engine, space, archive, *args, **kwargs):
        seen.extend(archive.ids)
        return real(engine, space, archive, *args, **kwargs)

    monkeypatch.setattr(indexing, "embed_with", spy)
    return seen


@pytest.mark.parametrize("case", STORES)
def test_append_embeds_only_new_items_and_keeps_existing_rows(
    case: str, demo_archive, demo_index: Path, tmp_path: Path, monkeypatch
):
    from rsir.cbir.indexing import append_archive
    from rsir.index.searcher import SearchIndex

    out = tmp_path / "idx"
    missing = _build_part(demo_index, out, case, tmp_path)
    before = SearchIndex(out)
    old_ids, old_rows = list(before.manifest.ids), (np.asarray(before.vectors)[:5] if case != "milvus-flat" else None)
    ivf_before = _ivf_state(out) if case == "faiss-ivfpq" else None
    seen = _embedded_ids(monkeypatch)

    report = append_archive(demo_archive, out)

    assert sorted(seen) == sorted(missing) and report.n_added == len(missing) and report.n_items == 168
    after = SearchIndex(out)
    assert after.manifest.ids[: len(old_ids)] == old_ids and sorted(after.manifest.ids[len(old_ids) :]) == missing
    assert after.manifest.store["kind"] == case.split("-")[0]
    if old_rows is not None:
        np.testing.assert_array_equal(np.asarray(after.vectors)[:5], old_rows)
    if ivf_before is not None:  # the trained lists and codebooks are reused, not retrained
        for a, b in zip(ivf_before, _ivf_state(out), strict=True):
            np.testing.assert_array_equal(a, b)
    if case.endswith("flat"):  # exact: the grown index answers as one built in one go
        for qid in QUERIES:
            assert _top(out, qid) == _top(demo_index, qid)
    assert append_archive(demo_archive, out).n_added == 0  # nothing new: nothing embedded, nothing written


def _ivf_state(folder: Path) -> list[np.ndarray]:
    import faiss

    index = faiss.read_index(str(folder / "index.faiss"))
    ivf = faiss.extract_index_ivf(index)
    coarse = faiss.vector_to_array(faiss.downcast_index(ivf.quantizer).codes)
    return [coarse, faiss.vector_to_array(faiss.downcast_index(index).pq.centroids)]


@pytest.mark.parametrize("case", ["faiss-flat", "milvus-flat"])
def test_killed_append_leaves_a_consistent_index_and_resumes(
    case: str, demo_archive, demo_index: Path, tmp_path: Path, monkeypatch
):
    from rsir.cbir.indexing import append_archive
    from rsir.index import faiss_index
    from rsir.index.searcher import SearchIndex

    out = tmp_path / "idx"
    missing = _build_part(demo_index, out, case, tmp_path)
    n_old = 168 - len(missing)
    q = SearchIndex(out).vector(0)

    class Killed(BaseException):
        pass

    if case.startswith("faiss"):  # killed between the two renames of the folder swap
        calls = []
        real_replace = faiss_index.os.replace

        def replace(src, dst):
            calls.append(dst)
            if len(calls) == 2:
                raise Killed
            real_replace(src, dst)

        monkeypatch.setattr(faiss_index.os, "replace", replace)
    else:  # killed after Milvus took the rows, before the manifest was written

        def save_folder(*args, **kwargs):
            raise Killed

        monkeypatch.setattr(faiss_index, "save_folder", save_folder)
    with pytest.raises(Killed):
        append_archive(demo_archive, out)
    monkeypatch.undo()

    half = SearchIndex(out)  # the previous index, whole: its manifest, its rows, its totals
    assert len(half.manifest.ids) == n_old and half.page(q, Filters(), 0, 5).total == n_old
    assert not set(missing) & {half.manifest.ids[r] for r, _ in half.page(q, Filters(), 0, n_old).hits}

    assert append_archive(demo_archive, out).n_added == len(missing)  # the rerun completes it
    whole = SearchIndex(out)
    assert len(whole.manifest.ids) == 168 and whole.page(q, Filters(), 0, 5).total == 168
    if case.startswith("milvus"):  # the upsert rewrote the killed run's rows, no duplicates
        assert whole.store.count("gen >= 0") == 168


@pytest.mark.parametrize("case", ["faiss-flat", "faiss-hnsw", "milvus-flat"])
def test_remove_by_id(case: str, demo_index: Path, tmp_path: Path):
    from rsir.cbir.indexing import remove_items
    from rsir.index.searcher import SearchIndex

    out = tmp_path / "idx"
    _build_part(demo_index, out, case, tmp_path, every=None)  # the whole archive
    before = _top(out, QUERIES[0], 20)
    gone = list(before)[1:4]
    report = remove_items(out, gone)
    assert report == {"removed": 3, "n_items": 165, "out": str(out), "store": case.split("-")[0]}
    after = _top(out, QUERIES[0], 17)
    assert not set(gone) & set(after)
    if case.endswith("flat"):
        assert after == {i: s for i, s in before.items() if i not in gone}
    idx = SearchIndex(out)
    assert len(idx.manifest.ids) == 165 and idx.page(idx.vector(0), Filters(), 0, 5).total == 165
    with pytest.raises(KeyError, match="unknown id"):
        remove_items(out, ["no/such-item"])


def test_cli_append_and_remove(demo_archive, demo_index: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from rsir.cli.main import app

    out = tmp_path / "idx"
    missing = _build_part(demo_index, out, "faiss-flat", tmp_path)
    runner = CliRunner()
    grown = runner.invoke(app, ["index", str(demo_archive.root), "--out", str(out), "--append", "--json"])
    assert grown.exit_code == 0, grown.output
    assert json.loads(grown.stdout)["n_added"] == len(missing)
    args = ["index", str(demo_archive.root), "--out", str(out), "--append"]
    refused = runner.invoke(app, [*args, "--index-type", "hnsw"])
    assert refused.exit_code == 2 and "--index-type" in refused.output
    removed = runner.invoke(app, ["index-remove", str(out), missing[0], missing[1], "--json"])
    assert removed.exit_code == 0 and json.loads(removed.stdout)["n_items"] == 166
    unknown = runner.invoke(app, ["index-remove", str(out), "nope"])
    assert unknown.exit_code == 2 and "unknown id" in unknown.output and "Traceback" not in unknown.output
