"""Querybank normalisation of text -> scene scores (rsir.text.querybank) against a naive reference, through
training, `rsir text eval` and text search."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest


def _naive_offsets(bank: np.ndarray, gallery: np.ndarray, beta: float) -> np.ndarray:
    """log(sum over the bank of exp(beta * cosine)) / beta, one gallery item at a time."""
    out = []
    for g in gallery.astype(np.float64):
        out.append(math.log(sum(math.exp(beta * float(b @ g)) for b in bank.astype(np.float64))) / beta)
    return np.array(out)


def _unit(rng, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_offsets_match_a_naive_inverted_softmax():
    from rsir.text.querybank import QueryBank, gallery_offsets, querybank_of

    rng = np.random.default_rng(0)
    bank, gallery = _unit(rng, 30), _unit(rng, 7)
    fast = gallery_offsets(bank, gallery, 10.0, chunk=3)  # chunks of the gallery: the index-sized path
    assert np.allclose(fast, _naive_offsets(bank, gallery, 10.0), atol=1e-4)
    # the ranking of (cosine - offset) is the inverted softmax's: exp(b s(q, g)) / sum_b exp(b s(b, g))
    q = _unit(rng, 1)[0]
    inverted = np.exp(10.0 * gallery @ q) / np.exp(10.0 * bank @ gallery.T).sum(0)
    assert list(np.argsort(-(gallery @ q - fast))) == list(np.argsort(-inverted))
    assert querybank_of({}) == QueryBank(0.0) and not QueryBank(0.0).active
    with pytest.raises(ValueError):
        QueryBank(-1.0)


def test_the_bank_is_the_distinct_captions():
    from rsir.text.querybank import distinct_rows

    rows = distinct_rows(["A beach.", "a beach. ", "a forest", "A beach.", "boats"])
    assert list(rows) == [0, 2, 4]


def test_cli_default_is_the_pipeline_default():
    from rsir.cli.text import DEFAULT_QB
    from rsir.text.pipeline import DEFAULT_QUERYBANK

    assert DEFAULT_QUERYBANK.beta == DEFAULT_QB


def test_querybank_is_saved_and_applied_by_eval_and_search(tiny_captions, tiny_index, tiny_model):
    """The default model carries the bank; eval and search score as the naive offsets predict."""
    import torch

    from rsir.data.captions import open_scene_captions
    from rsir.index.faiss_index import SearchIndex
    from rsir.text.expansion import expand_gallery, expansion_of
    from rsir.text.pipeline import embed, evaluate_checkpoint, open_model, scene_scores, split_features_for
    from rsir.text.querybank import BANK_FILE, distinct_rows, querybank_of
    from rsir.text.search import SceneTextSearch

    captions, images = tiny_captions
    model, manifest, enc = open_model(tiny_model)
    qb = querybank_of(manifest)
    assert qb.active and qb.beta == 10.0
    bank = np.load(tiny_model / BANK_FILE)
    train_captions = [c for p in open_scene_captions(captions, images).split("train").pairs for c in p.captions]
    assert len(bank) == len(distinct_rows(train_captions))  # the bank: distinct TRAIN captions, nothing else
    with torch.inference_mode():  # the bank is the best model's own text side over those captions
        text = torch.from_numpy(split_features_for(enc, captions, images, "train", None, False).text)
        expected_bank = model.encode_text(text[distinct_rows(train_captions)]).numpy()
    assert np.allclose(bank, expected_bank, atol=1e-5)

    feats = split_features_for(enc, captions, images, "test", None, False)
    image_emb, text_emb = embed(model, feats)
    gallery = expand_gallery(image_emb, expansion_of(manifest))
    naive = scene_scores(image_emb, text_emb, feats.caption_pair, feats.captions, gallery,
                         _naive_offsets(bank, gallery, qb.beta))  # fmt: skip
    scores = evaluate_checkpoint(tiny_model, captions, images, "test", progress=False)
    for key in ("t2i", "i2t", "t2i_dup_aware"):
        assert scores[key] == pytest.approx(naive[key])
    assert scores["mR"] == pytest.approx(naive["mR"])

    search = SceneTextSearch(SearchIndex(tiny_index), tiny_model)
    q = search.text_vector("a beach with blue sea")
    assert np.allclose(search.scores(q), search.image_emb @ q - _naive_offsets(bank, search.image_emb, qb.beta),
                       atol=1e-4)  # fmt: skip
    _, hits = search.search("a beach with blue sea", k=3)
    assert [h.score for h in hits] == pytest.approx(sorted(search.scores(q), reverse=True)[:3], abs=1e-6)


def test_validation_in_training_equals_eval_and_off_writes_no_bank(tiny_captions, tmp_path):
    from rsir.text.pipeline import evaluate_checkpoint, text_config, train
    from rsir.text.querybank import BANK_FILE, OFF

    captions, images = tiny_captions
    on, off = tmp_path / "on", tmp_path / "off"
    summary = train(captions, images, on, text_config(epochs=2, batch_size=8, finetune=0), progress=False)
    val = evaluate_checkpoint(on, captions, images, "val", progress=False)
    assert val["mR"] == pytest.approx(summary["val"]["mR"])
    train(captions, images, off, text_config(epochs=1, batch_size=8, finetune=0), progress=False, querybank=OFF)
    assert not (off / BANK_FILE).is_file() and json.loads((off / "manifest.json").read_text())["querybank"]["beta"] == 0
    with pytest.raises(ValueError, match="querybank"):  # a run continues only with its own setting
        train(captions, images, off, text_config(epochs=2, batch_size=8, finetune=0), progress=False)
