"""The Python API's index calls answer as `rsir search` does (one page function), and grow or shrink an index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import rsir
from rsir.cli.main import app


def test_a_filtered_page_from_python_equals_rsir_search(demo_index: Path) -> None:
    index = rsir.open_index(demo_index)
    query_id = "airplane/airplane00"
    page = index.page(index.vector(query_id), 5, labels=("airplane", "beach"), offset=2, skip_id=query_id)
    out = CliRunner().invoke(app, ["search", str(demo_index), "--id", query_id, "-k", "5", "--offset", "2",
                                   "--label", "airplane", "--label", "beach", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    cli = json.loads(out.stdout)
    assert page.total == cli["total"] and [h.id for h in page.hits] == [h["id"] for h in cli["hits"]]
    assert all(set(h.labels) & {"airplane", "beach"} for h in page.hits) and page.hits[0].rank == 3
    with pytest.raises(ValueError, match="unknown label"):
        index.page(index.vector(query_id), 5, labels=("volcano",))


def test_append_and_remove_from_python(demo_archive, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    for label in ("beach", "forest"):
        shutil.copytree(Path(demo_archive.root) / label, root / label)
    first = rsir.open_archive(root)
    few = [i for i, it in enumerate(first.items) if not it.id.endswith("7")]
    partial = tmp_path / "partial"
    for i in few:  # an older copy of the archive: the scenes ending in 7 came later
        item = first.items[i]
        (partial / item.id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.path, (partial / item.id).with_suffix(item.path.suffix))
    out = tmp_path / "idx"
    rsir.build_index(rsir.open_archive(partial), out)
    for item in first.items:  # the archive grows in place
        target = (partial / item.id).with_suffix(item.path.suffix)
        if not target.exists():
            shutil.copyfile(item.path, target)
    report = rsir.append_to_index(rsir.open_archive(partial), out)
    assert report.n_added == len(first) - len(few) and report.n_items == len(first)
    index = rsir.open_index(out)
    assert sorted(index.ids) == sorted(it.id for it in first.items)
    assert np.allclose(np.linalg.norm(index.vector("beach/beach07")), 1.0, atol=1e-4)
    gone = rsir.remove_from_index(out, ["beach/beach07"])
    assert gone["removed"] == 1 and "beach/beach07" not in rsir.open_index(out).ids
