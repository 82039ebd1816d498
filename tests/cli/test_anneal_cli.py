"""`rsir anneal simulate` end to end on the embedded UC Merced sample (real images, real weights)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsir.cli.main import app

runner = CliRunner()
KEYS = {"strategy", "resolved", "seed", "round", "n_labelled", "map@20"}


def simulate(demo_archive, out: Path, *extra: str):
    args = ["anneal", "simulate", str(demo_archive.root), "--out", str(out), "--strategies", "random,anneal-bcgue"]
    args += ["--initial", "20", "--per-round", "10", "--rounds", "1", "--seeds", "1", "--steps", "10", *extra]
    return runner.invoke(app, args)


def test_simulate_writes_results_and_resumes(demo_archive, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = simulate(demo_archive, out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"rounds", "off_the_shelf", "full_labels"}
    rows = report["rounds"]
    assert all(set(r) == KEYS for r in rows)
    assert [(r["strategy"], r["round"], r["n_labelled"]) for r in rows] == [
        ("random", 0, 20), ("random", 1, 30), ("anneal-bcgue", 0, 20), ("anneal-bcgue", 1, 30),
    ]  # fmt: skip
    off, full = report["off_the_shelf"]["map@20"], report["full_labels"]["map@20"]
    assert 0.5 < off < full <= 1.0
    assert all(0.0 < r["map@20"] <= 1.0 for r in rows)
    assert rows[0]["map@20"] == rows[2]["map@20"]  # same initial pairs and seed for every strategy

    with (out / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and set(table[0]) == KEYS
    assert json.loads((out / "results.json").read_text())["rounds"][1]["n_labelled"] == 30
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "campaigns.db").exists()

    again = simulate(demo_archive, out, "--json")  # everything is stored: nothing is retrained
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["rounds"] == rows


def test_simulate_refuses_other_settings_for_a_stored_campaign(demo_archive, tmp_path: Path) -> None:
    out = tmp_path / "run"
    db = tmp_path / "store.db"
    assert simulate(demo_archive, out, "--db", str(db), "--rounds", "0", "--no-full-labels").exit_code == 0
    clash = simulate(demo_archive, out, "--db", str(db), "--rounds", "0", "--no-full-labels", "--per-round", "5")
    assert clash.exit_code == 2 and "per_round" in clash.stderr


def test_unknown_strategy_is_a_clear_error(demo_archive, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["anneal", "simulate", str(demo_archive.root), "--out", str(tmp_path), "--strategies", "nope"]
    )
    assert result.exit_code == 2 and "unknown strategy" in result.stderr


def test_simulate_scores_rounds_with_the_k_asked_for(demo_archive, tmp_path: Path) -> None:
    """`--k 10`: every row, reference and the CSV carry map@10, and the off-the-shelf reference is the same
    number `rsir eval cbir --k 10` gives on that split (the k was not just renamed)."""
    out = tmp_path / "run"
    result = simulate(demo_archive, out, "--json", "--k", "10", "--rounds", "0", "--no-full-labels")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = report["rounds"]
    assert rows and all(set(r) == KEYS - {"map@20"} | {"map@10"} for r in rows)
    assert all(0.0 < r["map@10"] <= 1.0 for r in rows)
    evaluated = runner.invoke(
        app, ["eval", "cbir", str(demo_archive.root), "--split", "holdout:0.2", "--seed", "0", "--k", "10", "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    off = report["off_the_shelf"]["map@10"]
    assert off == pytest.approx(json.loads(evaluated.stdout)["map@10"], abs=1e-6)
    with (out / "results.csv").open() as fh:
        assert set(next(csv.DictReader(fh))) == KEYS - {"map@20"} | {"map@10"}

    again = simulate(demo_archive, out, "--json", "--rounds", "0", "--no-full-labels")  # k=20 on the k=10 store
    assert again.exit_code == 2 and "settings differ" in again.stderr


def test_simulation_config_works_for_any_k(demo_archive, tmp_path: Path) -> None:
    from rsir.active.simulate import SimulationConfig
    from rsir.active.simulate import simulate as run

    config = SimulationConfig(strategies=("random",), seeds=1, initial=10, per_round=5, rounds=0, k=10,
                              full_labels=False)  # fmt: skip
    result = run(demo_archive, tmp_path / "api", config, progress=False)
    assert result["metric"] == "map@10" and result["off_the_shelf"]["map@10"] > 0
    assert [set(r) >= {"map@10"} and "map@20" not in r for r in result["rounds"]] == [True]


def test_default_strategy_rows_carry_the_name_it_resolves_to(demo_archive, tmp_path: Path) -> None:
    from rsir.active.store import Store
    from rsir.active.strategies import resolve

    args = ["anneal", "simulate", str(demo_archive.root), "--out", str(tmp_path / "run"), "--strategies",
            "neighbours,default", "--initial", "20", "--per-round", "10", "--rounds", "1", "--seeds", "1",
            "--steps", "5", "--closure", "0.25", "--groups", "0.5", "--no-full-labels", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rounds"]
    assert {(r["strategy"], r["resolved"]) for r in rows} == {
        ("neighbours", "neighbours"),
        ("default", resolve("default")),
    }
    store = Store(tmp_path / "run" / "campaigns.db")
    row = store.campaign_by_name("sim/default/seed0")
    assert row.strategy == resolve("default") and row.settings["train"]["closure"] == 0.25  # --closure reached it
    assert row.settings["train"]["groups"] == 0.5  # --groups too
    store.dispose()
