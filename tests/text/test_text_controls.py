"""Controls of text <-> scene models: the image-ignoring and text-ignoring inputs score as chance predicts."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_derangement_moves_every_index():
    from rsir.text.controls import derangement

    for n in (2, 3, 8, 210):
        perm = derangement(n, seed=n)
        assert sorted(perm) == list(range(n)) and not np.any(perm == np.arange(n))
    with pytest.raises(ValueError):
        derangement(1)


def test_eval_controls_against_a_naive_reference(tiny_captions, tiny_model):
    from rsir.text.bridge import gallery_bridge_for
    from rsir.text.controls import derangement
    from rsir.text.expansion import expand_gallery, expansion_of
    from rsir.text.pipeline import embed, evaluate_checkpoint, open_model, scene_scores, split_features_for
    from rsir.text.querybank import offsets_for

    captions, images = tiny_captions
    model, manifest, enc = open_model(tiny_model)
    feats = split_features_for(enc, captions, images, "test", None, progress=False)
    image_emb, text_emb = embed(model, feats)
    perm = derangement(len(feats.pairs), seed=3)
    gallery = expand_gallery(image_emb[perm], expansion_of(manifest))  # the model's expansion, after the move
    offsets = offsets_for(tiny_model, manifest, gallery)  # the querybank's offsets follow the moved images
    bridge = gallery_bridge_for(tiny_model, manifest, image_emb[perm])  # the training-memory bridge likewise
    naive = scene_scores(image_emb[perm], text_emb, feats.caption_pair, feats.captions, gallery, offsets, bridge)
    got = evaluate_checkpoint(
        tiny_model, captions, images, "test", progress=False, control="shuffle-images", control_seed=3
    )
    assert got["control"] == "shuffle-images"
    assert got["t2i"] == pytest.approx(naive["t2i"]) and got["i2t"] == pytest.approx(naive["i2t"])
    # one query for every caption: the same image ranks first for all, so t2i R@1 is 1 / gallery exactly
    const = evaluate_checkpoint(tiny_model, captions, images, "test", progress=False, control="constant-text")
    assert const["t2i"]["r@1"] == pytest.approx(100 / len(feats.pairs))
    with pytest.raises(ValueError, match="unknown control"):
        evaluate_checkpoint(tiny_model, captions, images, "test", progress=False, control="nope")


def test_shuffled_train_control_is_recorded_and_frozen_only(tiny_captions, tmp_path):
    from rsir.text.pipeline import text_config, train

    captions, images = tiny_captions
    out = tmp_path / "ctl"
    train(
        captions, images, out, text_config(epochs=1, batch_size=8, finetune=0), progress=False, control="shuffle-images"
    )
    assert json.loads((out / "manifest.json").read_text())["control"] == "shuffle-images"
    with pytest.raises(ValueError, match="control=shuffle-images"):  # a run continues only under its own control
        train(captions, images, out, text_config(epochs=2, batch_size=8, finetune=0), progress=False)
    with pytest.raises(ValueError, match="use --finetune 0"):
        train(
            captions,
            images,
            tmp_path / "ft",
            text_config(epochs=1, finetune=1),
            progress=False,
            control="shuffle-images",
        )
    with pytest.raises(ValueError, match="unknown control"):
        train(
            captions, images, tmp_path / "c", text_config(epochs=1, finetune=0), progress=False, control="constant-text"
        )


def test_cli_eval_control_and_bad_control(tiny_captions, tiny_model):
    from typer.testing import CliRunner

    from rsir.cli.main import app

    captions, images = tiny_captions
    base = ["text", "eval", str(tiny_model), str(captions), "--images", str(images), "--json"]
    r = CliRunner().invoke(app, [*base, "--control", "constant-text"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["control"] == "constant-text"
    bad = CliRunner().invoke(app, [*base, "--control", "nope"])
    assert bad.exit_code == 2 and "unknown control" in bad.output and "Traceback" not in bad.output
