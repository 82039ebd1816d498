"""`rsir train cbir --finetune N` on the embedded demo: the encoder's tail learns and travels with the head."""

import json
import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

from rsir.cli.main import app

runner = CliRunner()
SPLIT = ("--split", "holdout:0.25", "--seed", "0")


def rsir(*args):
    return runner.invoke(app, [str(a) for a in args])


def as_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_finetune_trains_the_encoder_tail_and_eval_loads_it(demo_archive, tmp_path: Path) -> None:
    from rsir.cbir.space import Space
    from rsir.models.encoders import load_encoder

    root, head = demo_archive.root, tmp_path / "ft"
    report = as_json(rsir("train", "cbir", root, "--out", head, *SPLIT, "--finetune", "1", "--epochs", "1", "--json"))
    assert report["finetuned_blocks"] == 1
    saved = torch.load(head / "encoder.pt", weights_only=True)

    pretrained = load_encoder().state_dict()
    last_block = len(load_encoder().net._blocks) - 1
    changed = {k for k, v in saved.items() if not torch.equal(v, pretrained[k])}
    assert any(k.startswith(f"net._blocks.{last_block}.") for k in changed)  # the tail learned
    assert all(k.startswith((f"net._blocks.{last_block}.", "net._conv_head", "net._bn1")) for k in changed)

    loaded = Space.load(head=head).encoder.state_dict()  # what `eval cbir --head` embeds with
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())

    tuned = as_json(rsir("eval", "cbir", root, "--head", head, *SPLIT, "--json"))
    frozen_copy = tmp_path / "head-only"
    shutil.copytree(head, frozen_copy)
    (frozen_copy / "encoder.pt").unlink()
    frozen = as_json(rsir("eval", "cbir", root, "--head", frozen_copy, *SPLIT, "--json"))
    assert 0.5 < tuned["map@20"] <= 1 and tuned["map"] != frozen["map"]

    # a frozen head trained later into the same folder must not be paired with the old fine-tuned encoder
    as_json(rsir("train", "cbir", root, "--out", head, *SPLIT, "--epochs", "1", "--overwrite", "--json"))
    assert not (head / "encoder.pt").exists()


def test_finetune_with_pairs_is_refused(demo_archive, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("id_a,id_b,similar\nbeach/beach00,beach/beach01,1\n")
    result = rsir("train", "cbir", demo_archive.root, "--out", tmp_path / "h", "--pairs", pairs, "--finetune", "1")
    assert result.exit_code == 2 and "--finetune" in result.stderr
