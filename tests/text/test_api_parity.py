"""`rsir text train / eval` and the Python API (rsir.train_text, rsir.evaluate_text) agree; real sentences."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import rsir
from rsir.cli.main import app

runner = CliRunner()


def test_eval_matches(tiny_captions, tiny_model) -> None:
    captions, images = tiny_captions
    result = runner.invoke(app, ["text", "eval", str(tiny_model), str(captions), "--images", str(images), "--json"])
    assert result.exit_code == 0, result.output
    scores = rsir.evaluate_text(tiny_model, captions, images)
    assert json.loads(result.stdout) == scores.report and scores.gallery_size == 8


def test_train_matches_and_counts_epochs_from_one(tiny_captions, tmp_path: Path) -> None:
    """The summary's best epoch already counts from 1: the command printed it one too high (epoch 2 of 1)."""
    captions, images = tiny_captions
    args = ["text", "train", str(captions), "--images", str(images), "--out", str(tmp_path / "cli")]
    result = runner.invoke(app, [*args, "--epochs", "1", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    trained = rsir.train_text(captions, images, tmp_path / "api", epochs=1, batch_size=8)
    assert trained.best_epoch == 1
    assert "\nbest epoch 1: val mR " in "\n" + result.stdout
    assert f"val mR {trained.val.mR:.2f} " in result.stdout
