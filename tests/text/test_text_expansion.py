"""Gallery-side neighbour expansion of scene embeddings: against a naive reference, and where it is applied."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _naive(emb: np.ndarray, k: int, weight: float) -> np.ndarray:
    out = []
    for i, e in enumerate(emb):
        others = sorted((j for j in range(len(emb)) if j != i), key=lambda j: -float(emb[j] @ e))[:k]
        v = e + weight * sum(emb[j] for j in others)
        out.append(v / np.linalg.norm(v))
    return np.array(out)


def test_expand_gallery_matches_a_naive_reference():
    from rsir.text.expansion import OFF, Expansion, expand_gallery, nearest_others

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    for k, w in ((1, 1.0), (3, 0.3), (5, 0.5)):
        got = expand_gallery(emb, Expansion(k, w))
        assert np.allclose(got, _naive(emb, k, w), atol=1e-5)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert not np.any(nearest_others(emb, 3) == np.arange(40)[:, None])  # never the item itself
    assert expand_gallery(emb, OFF) is emb and expand_gallery(emb[:1], Expansion()) is not None
    with pytest.raises(ValueError):
        Expansion(-1, 0.3)


def test_cli_defaults_are_the_pipeline_default():
    from rsir.cli.text import DEFAULT_K, DEFAULT_W
    from rsir.text.pipeline import DEFAULT_EXPANSION

    assert (DEFAULT_EXPANSION.k, DEFAULT_EXPANSION.weight) == (DEFAULT_K, DEFAULT_W)


def test_expansion_is_saved_and_applied_by_eval(tiny_captions, tmp_path):
    """A checkpoint's expansion drives `rsir text eval` as the naive expansion of its embeddings predicts."""
    from rsir.text.bridge import OFF as BRIDGE_OFF
    from rsir.text.expansion import OFF, Expansion, expand_gallery
    from rsir.text.pipeline import (
        embed,
        evaluate_checkpoint,
        open_model,
        scene_scores,
        split_features_for,
        text_config,
        train,
    )
    from rsir.text.querybank import OFF as QB_OFF

    captions, images = tiny_captions
    out = tmp_path / "x"
    train(
        captions,
        images,
        out,
        text_config(epochs=1, batch_size=8, finetune=0),
        progress=False,
        expansion=Expansion(2, 0.5),
        querybank=QB_OFF,  # the expansion alone (tests/text/test_text_querybank.py covers the two together)
        bridge=BRIDGE_OFF,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["gallery_expansion"] == {"k": 2, "weight": 0.5}
    model, _, enc = open_model(out)
    feats = split_features_for(enc, captions, images, "test", None, progress=False)
    image_emb, text_emb = embed(model, feats)
    expanded = scene_scores(_naive(image_emb, 2, 0.5), text_emb, feats.caption_pair, feats.captions)
    raw = scene_scores(image_emb, text_emb, feats.caption_pair, feats.captions)
    got = evaluate_checkpoint(out, captions, images, "test", progress=False)
    # text queries rank the expanded gallery; image queries keep their own embeddings
    assert got["t2i"] == pytest.approx(expanded["t2i"]) and got["i2t"] == pytest.approx(raw["i2t"])
    assert got["t2i_dup_aware"] == pytest.approx(expanded["t2i_dup_aware"])
    assert not np.allclose(expand_gallery(image_emb, Expansion(2, 0.5)), image_emb)
    with pytest.raises(ValueError, match="gallery_expansion"):  # a run continues only with its own expansion
        train(captions, images, out, text_config(epochs=2, batch_size=8, finetune=0), progress=False, expansion=OFF,
              querybank=QB_OFF, bridge=BRIDGE_OFF)  # fmt: skip


def test_defaults_fine_tune_the_last_block_with_turns(tiny_captions, tmp_path):
    """`rsir text train`'s defaults are the best measured row: last block fine-tuned with turned maps, 10
    epochs, gallery expansion; --finetune 0 trains frozen for 30 epochs."""
    from typer.testing import CliRunner

    from rsir.cli.main import app
    from rsir.text.pipeline import text_config

    assert (text_config().finetune, text_config().epochs) == (1, 10)
    assert (text_config(finetune=0).finetune, text_config(finetune=0).epochs) == (0, 30)
    captions, images = tiny_captions
    out = tmp_path / "cli"
    args = ["text", "train", str(captions), "--images", str(images), "--out", str(out), "--epochs", "1"]
    r = CliRunner().invoke(app, [*args, "--batch-size", "8", "--json"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finetuned_blocks"] == 1 and manifest["augment"] is True
    assert manifest["gallery_expansion"] == {"k": 3, "weight": 0.3} and (out / "encoder.pt").is_file()
    bad = CliRunner().invoke(app, [*args[:-2], "--finetune", "0", "--augment", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "needs --finetune" in bad.output
