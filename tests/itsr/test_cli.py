"""End to end through the CLI on a tiny semi-synthetic set: synth -> train -> resume -> eval -> search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rsir.cli.main import app

runner = CliRunner()


def _scenes(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c, label in enumerate(("agricultural", "forest", "storagetanks")):
        (root / label).mkdir(parents=True)
        for i in range(6):
            img = np.clip(np.array([60 + 60 * c, 200 - 50 * c, 90]) + rng.normal(0, 25, (32, 32, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(root / label / f"{label}{i:02d}.png")
    return root


def _run(*args: str) -> str:
    result = runner.invoke(app, ["itsr", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("itsr")
    out = tmp / "synth"
    manifest = json.loads(_run("synth", str(_scenes(tmp / "scenes")), "--out", str(out), "--pairs", "10", "--json"))
    assert manifest["pairs"] == {"train": 7, "val": 1, "test": 2}
    return out


def test_train_resume_eval_search(dataset: Path, tmp_path: Path):
    ckpt = tmp_path / "ckpt"
    args = [
        "train",
        str(dataset),
        "--out",
        str(ckpt),
        "--fusion",
        "gff-concat+diff",
        "--dim",
        "32",
        "--threads",
        "1",
        "--json",
    ]
    first = json.loads(_run(*args, "--epochs", "2"))
    assert first["epochs_run"] == 2 and len(first["history"]) == 2
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["config"]["fusion"] == "gff-concat+diff" and manifest["config"]["dim"] == 32
    assert manifest["config"]["encoder"] == "efficientnet-lite0" and manifest["config"]["encoder_hash"]
    assert manifest["epoch"] == first["best_epoch"] and "mR" in manifest["val"]
    assert (ckpt / "model.pt").is_file() and (ckpt / "last.pt").is_file()
    assert any((dataset / ".rsir_cache" / "itsr").iterdir())  # features cached with the dataset

    resumed = json.loads(_run(*args, "--epochs", "3"))  # continues: only epoch 3 is trained
    assert resumed["epochs_run"] == 3
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]  # counted from 1, as printed
    assert resumed["history"][:2] == first["history"]

    scores = json.loads(_run("eval", str(ckpt), str(dataset), "--json"))
    assert set(scores) == {"t2i", "i2t", "mR", "gallery_size", "t2i_dup", "changed", "unchanged"}
    assert set(scores["t2i"]) == set(scores["i2t"]) == {"r@1", "r@5", "r@10"}
    assert scores["gallery_size"] == 2  # the whole test split, no-change pairs included
    assert scores["t2i"]["r@10"] == 100.0  # a gallery of 2 is always found in the top 10
    assert scores["changed"]["pairs"] == scores["unchanged"]["pairs"] == 1  # half the pairs are unchanged
    assert set(scores["changed"]) == {"t2i", "i2t", "mR", "pairs", "t2i_dup"}
    shuffled = json.loads(_run("eval", str(ckpt), str(dataset), "--json", "--shuffle-before", "--shuffle-seed", "4"))
    assert shuffled["shuffled_before_seed"] == 4 and shuffled["gallery_size"] == 2
    assert "changed pairs (headline)" in _run("eval", str(ckpt), str(dataset), "--shuffle-before")

    grid = tmp_path / "grid.png"
    found = json.loads(
        _run(
            "search", str(ckpt), str(dataset), "--text", "new forest appeared", "-k", "2", "--grid", str(grid), "--json"
        )
    )
    assert [r["rank"] for r in found["results"]] == [1, 2]
    assert found["results"][0]["score"] >= found["results"][1]["score"]
    assert Image.open(grid).size[1] > 2 * 128
    a = next((dataset / "images" / "test" / "A").iterdir())
    b = dataset / "images" / "test" / "B" / a.name
    captions = json.loads(_run("search", str(ckpt), str(dataset), "--pair", str(a), str(b), "-k", "3", "--json"))
    assert len(captions["results"]) == 3 and all(r["caption"] for r in captions["results"])


def test_train_tff_and_clear_errors(dataset: Path, tmp_path: Path):
    ckpt = tmp_path / "tff"
    out = json.loads(
        _run(
            "train",
            str(dataset),
            "--out",
            str(ckpt),
            "--fusion",
            "tff",
            "--epochs",
            "1",
            "--dim",
            "32",
            "--tff-layers",
            "1",
            "--threads",
            "1",
            "--json",
        )
    )
    assert out["epochs_run"] == 1
    tff = json.loads((ckpt / "manifest.json").read_text())["config"]["tff"]
    assert tff["diff_stream"] and tff["global_skip"] and tff["pool"] == "cls" and tff["layers"] == 1

    bad = runner.invoke(app, ["itsr", "train", str(dataset), "--out", str(tmp_path / "x"), "--fusion", "lff"])
    assert bad.exit_code == 2 and "unknown fusion" in bad.output
    heads = runner.invoke(app, ["itsr", "train", str(dataset), "--out", str(tmp_path / "y"), "--tff-heads", "3"])
    assert heads.exit_code == 2 and "divisible" in heads.output
    changed = runner.invoke(
        app,
        [
            "itsr",
            "train",
            str(dataset),
            "--out",
            str(ckpt),
            "--fusion",
            "tff",
            "--epochs",
            "1",
            "--dim",
            "64",
            "--tff-layers",
            "1",
        ],
    )
    assert changed.exit_code == 2 and "other settings (dim)" in changed.output
    missing = runner.invoke(app, ["itsr", "eval", str(tmp_path / "nothing"), str(dataset)])
    assert missing.exit_code == 2 and "not an rsir itsr checkpoint" in missing.output
    both = runner.invoke(app, ["itsr", "search", str(ckpt), str(dataset)])
    assert both.exit_code == 2 and "exactly one of --text or --pair" in both.output


def test_finetune_trains_the_encoder_tail_and_eval_uses_it(dataset: Path, tmp_path: Path):
    import torch

    from rsir.data.changecap import open_change_captions
    from rsir.itsr.features import encode_pair_batch, prepared_pair, trunk_features
    from rsir.itsr.pipeline import Encoders, evaluate_checkpoint
    from rsir.models.encoders import load_encoder, weights_fingerprint
    from rsir.train.itsr_finetune import TunedTail

    ckpt = tmp_path / "tuned"
    args = ["train", str(dataset), "--out", str(ckpt), "--fusion", "gff-concat+diff", "--dim", "32"]
    summary = json.loads(_run(*args, "--finetune", "1", "--finetune-lr", "1e-3", "--epochs", "2", "--json"))
    assert summary["epochs_run"] == 2
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["finetuned_blocks"] == 1 and manifest["train"]["finetune"] == 1
    tuned, pretrained = torch.load(ckpt / "encoder.pt", weights_only=True), load_encoder().state_dict()
    changed = {k for k in tuned if not torch.equal(tuned[k], pretrained[k])}
    assert changed and all(k.startswith(("net._blocks.15.", "net._conv_head", "net._bn1")) for k in changed)

    # Evaluation embeds the gallery with the fine-tuned encoder: its own cache folder, keyed by encoder.pt.
    scores = evaluate_checkpoint(ckpt, dataset, "test", progress=False)
    assert scores["gallery_size"] == 2
    folders = {p.name for p in (dataset / ".rsir_cache" / "itsr").iterdir()}
    assert any(weights_fingerprint(str((ckpt / "encoder.pt").resolve())) in f for f in folders)

    # Fast path (cached float16 trunk maps + tail) == the whole encoder on the images.
    pairs = open_change_captions(dataset).split("test").pairs
    encoder = load_encoder()
    maps = trunk_features(pairs, encoder, 1, tmp_path / "cache", "test", progress=False)
    tail = TunedTail(encoder, 1, maps, maps, "cpu")
    glob, tokens = tail.batch(torch.arange(len(pairs)))
    x = torch.stack([prepared_pair(p, encoder.config.preprocess) for p in pairs])
    want_glob, want_tokens = encode_pair_batch(Encoders("efficientnet-lite0", "all-minilm-l6-v2").image, x)
    assert torch.allclose(tokens, want_tokens, atol=0.01) and torch.allclose(glob, want_glob, atol=0.002)


@pytest.mark.parametrize("text_encoder", ["remoteclip-vit-b-32", "open_clip:ViT-B-16/openai", "no-such/model-xyz"])
def test_unavailable_text_encoder_is_a_clear_error(dataset: Path, tmp_path: Path, text_encoder: str):
    # Here: no open_clip package and no internet. Users with both get the tower; nobody gets a traceback.
    cache = tmp_path / "cache"
    args = ["itsr", "train", str(dataset), "--out", str(tmp_path / "c"), "--text-encoder", text_encoder]
    result = runner.invoke(app, [*args, "--cache-dir", str(cache)])
    assert result.exit_code == 2, result.output
    assert not list(cache.rglob("*.tokens.npy"))  # it failed before spending time on image features
    assert "error:" in result.output and "Traceback" not in result.output
    assert ("open_clip" in result.output) or ("internet" in result.output)


def test_train_eval_and_search_with_the_change_gate(dataset: Path, tmp_path: Path):
    ckpt = tmp_path / "gate"
    args = ("train", str(dataset), "--out", str(ckpt), "--fusion", "gate", "--epochs", "1", "--dim", "32")
    assert json.loads(_run(*args, "--threads", "1", "--json"))["epochs_run"] == 1
    assert json.loads((ckpt / "manifest.json").read_text())["config"]["fusion"] == "gate"
    scores = json.loads(_run("eval", str(ckpt), str(dataset), "--json"))
    shuffled = json.loads(_run("eval", str(ckpt), str(dataset), "--json", "--shuffle-before"))
    assert scores["gallery_size"] == shuffled["gallery_size"] == 2 and "changed" in shuffled
    a = next((dataset / "images" / "test" / "A").iterdir())
    found = _run("search", str(ckpt), str(dataset), "--pair", str(a), str(a.parent.parent / "B" / a.name), "--json")
    assert json.loads(found)["results"]


def test_finer_tokens_from_an_earlier_stage_through_train_eval_and_search(dataset: Path, tmp_path: Path):
    from rsir.itsr.evaluate import embed_split
    from rsir.itsr.features import encode_pair_batch, prepared_pair
    from rsir.itsr.pipeline import open_for_checkpoint

    ckpt = tmp_path / "fine"
    args = ("train", str(dataset), "--out", str(ckpt), "--fusion", "gate-sharp8", "--epochs", "1", "--dim", "32")
    assert json.loads(_run(*args, "--token-stage", "5", "--threads", "1", "--json"))["epochs_run"] == 1
    config = json.loads((ckpt / "manifest.json").read_text())["config"]
    assert (config["token_stage"], config["n_tokens"], config["token_dim"]) == (5, 196, 112)  # 14x14x112
    shuffled = json.loads(_run("eval", str(ckpt), str(dataset), "--json", "--shuffle-before"))
    assert shuffled["gallery_size"] == 2
    # a pair searched by its image files is embedded exactly as the gallery embeds it (cached trunk maps)
    model, _, enc, feats = open_for_checkpoint(ckpt, dataset, "test", progress=False)
    gallery, _ = embed_split(model, feats)
    glob, tokens = encode_pair_batch(enc.image, prepared_pair(feats.pairs[0], enc.image.config.preprocess)[None], 5)
    with torch.inference_mode():
        query = model.encode_pairs(glob.float(), tokens.float()).numpy()[0]
    assert np.allclose(query, gallery[0], atol=5e-3)  # the cache holds float16 maps
    # the public API (what the web service's pair upload runs) embeds at the checkpoint's token stage too
    from rsir.api_itsr import ItsrModel
    from rsir.itsr.features import load_pair_image

    pair = feats.pairs[0]
    by_api = ItsrModel(ckpt, dataset, "test").pair_vector(load_pair_image(pair.before), load_pair_image(pair.after))
    assert np.allclose(by_api, gallery[0], atol=5e-3)
    refused = {"99": "n_tail must be in", "5 --finetune 1": "cannot be combined"}
    for extra, message in refused.items():
        bad = runner.invoke(app, ["itsr", *args[:3], str(tmp_path / "bad"), "--token-stage", *extra.split()])
        assert bad.exit_code == 2 and message in bad.output, bad.output


def test_sibling_pairs_through_synth_and_train(tmp_path: Path):
    out = tmp_path / "sib"
    scenes = _scenes(tmp_path / "scenes", seed=1)
    manifest = json.loads(_run("synth", str(scenes), "--out", str(out), "--pairs", "30", "--siblings", "0.8", "--json"))
    assert manifest["siblings"]["groups"] >= 1  # three classes: a third sibling may repeat a class, not crash
    ckpt = tmp_path / "ckpt"
    args = ("train", str(out), "--out", str(ckpt), "--fusion", "gff-concat+diff", "--dim", "32", "--epochs", "1")
    assert json.loads(_run(*args, "--sibling-batches", "--threads", "1", "--json"))["epochs_run"] == 1
    assert torch.load(ckpt / "last.pt", weights_only=False)["train_config"]["sibling_batches"] is True
    bad = runner.invoke(app, ["itsr", "synth", str(scenes), "--out", str(tmp_path / "x"), "--siblings", "1.5"])
    assert bad.exit_code == 2 and "siblings" in bad.output
    bad = runner.invoke(app, ["itsr", "synth", str(scenes), "--out", str(tmp_path / "y"), "--workers", "0"])
    assert bad.exit_code == 2 and "workers" in bad.output


def test_gate_tff_with_changed_weight_through_train_eval_search(dataset: Path, tmp_path: Path):
    ckpt = tmp_path / "gtff"
    args = ("train", str(dataset), "--out", str(ckpt), "--dim", "32", "--epochs", "1")  # the default fusion
    assert json.loads(_run(*args, "--changed-weight", "2", "--threads", "1", "--json"))["epochs_run"] == 1
    saved = torch.load(ckpt / "last.pt", weights_only=False)["train_config"]
    assert saved["changed_weight"] == 2.0 and saved["token_stage"] == 5  # resolved: the fusion's default
    config = json.loads((ckpt / "manifest.json").read_text())["config"]
    assert (config["fusion"], config["token_stage"], config["n_tokens"]) == ("gate-tff", 5, 196)
    resumed = json.loads(_run(*args, "--changed-weight", "2", "--threads", "1", "--json"))  # resumes, no refusal
    assert resumed["epochs_run"] == 1
    scores = json.loads(_run("eval", str(ckpt), str(dataset), "--json", "--shuffle-before"))
    assert scores["gallery_size"] == 2 and "changed" in scores
    found = json.loads(_run("search", str(ckpt), str(dataset), "--text", "new forest appeared", "-k", "2", "--json"))
    assert len(found["results"]) == 2
    bad = runner.invoke(app, ["itsr", *args[:3], str(tmp_path / "bad"), "--changed-weight", "0"])
    assert bad.exit_code == 2 and "changed-weight" in bad.output


def test_default_token_stage_resolves_per_fusion_encoder_and_finetune():
    from rsir.itsr.pipeline import Encoders, resolve_token_stage
    from rsir.train.itsr import ITSRTrainConfig

    enc = Encoders("efficientnet-lite0", "all-minilm-l6-v2", "cpu")
    stage = {
        "default": ITSRTrainConfig(),
        "gate": ITSRTrainConfig(fusion="gate"),
        "finetune": ITSRTrainConfig(finetune=1),
        "explicit": ITSRTrainConfig(token_stage=0),
        "explicit 8": ITSRTrainConfig(fusion="gate", token_stage=8),
    }
    got = {k: resolve_token_stage(c, enc).token_stage for k, c in stage.items()}
    assert got == {"default": 5, "gate": 0, "finetune": 0, "explicit": 0, "explicit 8": 8}
