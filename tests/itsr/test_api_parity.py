"""`rsir itsr train / eval / search` and the Python API (rsir.train_itsr, evaluate_itsr, open_itsr) agree."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import rsir
from rsir.cli.main import app

runner = CliRunner()
SMALL = {"fusion": "gff-concat+diff", "dim": 32, "epochs": 2, "batch_size": 8}


def cli(*args: object) -> dict:
    result = runner.invoke(app, ["itsr", *[str(a) for a in args]])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def _scenes(root: Path) -> Path:
    """Three classes of six noisy 32 px scenes (as tests/itsr/test_cli.py makes them)."""
    rng = np.random.default_rng(0)
    for c, label in enumerate(("agricultural", "forest", "storagetanks")):
        (root / label).mkdir(parents=True)
        for i in range(6):
            img = np.clip(np.array([60 + 60 * c, 200 - 50 * c, 90]) + rng.normal(0, 25, (32, 32, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(root / label / f"{label}{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("itsr-parity")
    by_cli = cli("synth", _scenes(tmp / "scenes"), "--out", tmp / "cli", "--pairs", "10", "--json")
    by_api = rsir.make_change_set(tmp / "scenes", tmp / "api", pairs=10)
    assert by_cli == by_api
    return tmp / "cli"


def test_train_eval_search_match(dataset: Path, tmp_path: Path) -> None:
    flags = ["--fusion", "gff-concat+diff", "--dim", "32", "--epochs", "2", "--batch-size", "8", "--threads", "1"]
    summary = cli("train", dataset, "--out", tmp_path / "cli", *flags, "--json")
    result = rsir.train_itsr(dataset, tmp_path / "api", **SMALL)
    assert summary["val"] == result.report["val"] and summary["best_epoch"] == result.best_epoch
    assert [h["loss"] for h in summary["history"]] == [h["loss"] for h in result.history]

    scores = cli("eval", tmp_path / "cli", dataset, "--json")
    api_scores = rsir.evaluate_itsr(tmp_path / "api", dataset)
    assert scores == api_scores.report and scores["mR"] == api_scores.mR
    assert api_scores.block("changed") is not None

    found = cli("search", tmp_path / "cli", dataset, "--text", "a new building appeared", "-k", "2", "--json")
    hits = rsir.open_itsr(tmp_path / "api", dataset).search_text("a new building appeared", k=2)
    assert found["results"] == [asdict(h) for h in hits]
