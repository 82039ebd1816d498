"""The CLI and the Python API give identical results for the same job (the CLI only parses and prints).

Each test runs one job twice on the embedded UC Merced sample (real images, real weights): once as a
command, once as the documented `rsir.` call, into separate folders, and compares what they report.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import rsir
from rsir.cli.main import app

runner = CliRunner()


def cli(*args: object) -> dict:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_index_and_search_match(demo_archive, tmp_path: Path) -> None:
    by_cli, by_api = tmp_path / "cli", tmp_path / "api"
    report = cli("index", demo_archive.root, "--out", by_cli, "--index-type", "hnsw", "--json")
    built = rsir.build_index(demo_archive, by_api, index_type="hnsw")
    same = ("n_items", "n_failed", "n_skipped", "dim", "index_type", "bytes_per_item", "runtime", "built", "store")
    assert {k: report[k] for k in same} == {k: asdict(built)[k] for k in same}
    a, b = rsir.open_index(by_cli), rsir.open_index(by_api)
    assert a.ids == b.ids
    assert np.array_equal(np.stack([a.vector(i) for i in a.ids]), np.stack([b.vector(i) for i in b.ids]))

    hits = cli("search", by_cli, "--id", "harbor/harbor00", "-k", "5", "--label", "harbor", "--json")
    page = b.page(item_id="harbor/harbor00", k=5, labels=("harbor",))
    assert hits["total"] == page.total and hits["hits"] == [asdict(h) for h in page.hits]
    image = demo_archive.root / "beach" / "beach03.jpg"
    hits = cli("search", by_cli, "--image", image, "-k", "4", "--offset", "2", "--json")
    assert hits["hits"] == [asdict(h) for h in b.page(image=image, k=4, offset=2).hits]


def test_remove_matches(demo_archive, tmp_path: Path) -> None:
    for name in ("cli", "api"):
        rsir.build_index(demo_archive, tmp_path / name)
    gone = ["beach/beach00", "forest/forest01"]
    by_cli = cli("index-remove", tmp_path / "cli", *gone, "--json")
    by_api = rsir.remove_from_index(tmp_path / "api", gone)
    assert {**by_cli, "out": ""} == {**by_api, "out": ""} and by_cli["removed"] == 2
    assert rsir.open_index(tmp_path / "cli").ids == rsir.open_index(tmp_path / "api").ids


def test_eval_cbir_matches(demo_archive) -> None:
    for split in ("loo", "holdout:0.25"):
        by_cli = cli("eval", "cbir", demo_archive.root, "--split", split, "--k", "10", "--seed", "1", "--json")
        assert by_cli == rsir.evaluate(demo_archive, split=split, k=10, seed=1).to_dict()


def test_anneal_simulate_matches(demo_archive, tmp_path: Path) -> None:
    small = {"seeds": 1, "initial": 20, "per_round": 10, "rounds": 1, "n_random": 200}
    by_cli = cli(
        "anneal", "simulate", demo_archive.root, "--out", tmp_path / "cli", "--strategies", "random,anneal-mgue",
        "--initial", "20", "--per-round", "10", "--rounds", "1", "--seeds", "1", "--n-random", "200", "--steps", "5",
        "--no-full-labels", "--json",
    )  # fmt: skip
    result = rsir.simulate(
        demo_archive, tmp_path / "api", strategies=["random", "anneal-mgue"], train=rsir.PairTraining(steps=5),
        full_labels=False, **small,
    )  # fmt: skip
    rows = [(r["strategy"], r["round"], r["n_labelled"], r["map@20"]) for r in by_cli["rounds"]]
    assert rows == [(r.strategy, r.round, r.n_labelled, r.map_at_k) for r in result.rounds]
    assert by_cli["off_the_shelf"]["map@20"] == result.off_the_shelf
    assert len(rows) == 4
