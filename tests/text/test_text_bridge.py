"""The training-memory bridge (rsir.text.bridge): against a naive reference, and applied alike by training's
validation, `rsir text eval`, `rsir search --text` and the service's /api/search/text."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest


def _unit(rng, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _naive(bridge, text, images, carries, gallery, queries) -> tuple[np.ndarray, np.ndarray]:
    """(t2i [M, N], i2t [M, N]) one query and one scene at a time, straight from the formulas of the module doc."""

    def best(q):  # each training image's best caption cosine with q
        return [max(float(text[c] @ q) for c, j in carries if j == img) for img in range(len(images))]

    def neighbours(g):  # (training image, weight): the k nearest, softmax over their cosines / tau
        near = sorted(range(len(images)), key=lambda j: -float(images[j] @ g))[: bridge.k]
        z = [math.exp(float(images[j] @ g) / bridge.tau) for j in near]
        return [(j, w / sum(z)) for j, w in zip(near, z, strict=True)]

    t2i = np.zeros((len(queries), len(gallery)))
    i2t = np.zeros((len(queries), len(gallery)))
    for m, q in enumerate(queries.astype(np.float64)):
        b = best(q)
        z = [math.exp(v / bridge.temperature) for v in b]
        a = [v / sum(z) for v in z]
        for n, g in enumerate(gallery.astype(np.float64)):
            t2i[m, n] = bridge.weight * sum(w * a[j] for j, w in neighbours(g))
            i2t[m, n] = bridge.i2t_weight * sum(w * max(0.0, b[j]) for j, w in neighbours(g))
    return t2i, i2t


def test_gallery_bridge_matches_a_naive_reference():
    from rsir.text.bridge import OFF, Bridge, GalleryBridge, Memory, bridge_of

    rng = np.random.default_rng(0)
    text, images, gallery, queries = _unit(rng, 12), _unit(rng, 9), _unit(rng, 7), _unit(rng, 5)
    carries = np.array(sorted({(int(c), int(rng.integers(9))) for c in range(12)} | {(c % 12, c) for c in range(9)}))
    memory = Memory(text, images, carries)
    for bridge in (Bridge(), Bridge(k=3, tau=0.1, temperature=0.2, weight=2.0, i2t_weight=0.5)):
        over = GalleryBridge(bridge, memory, gallery, chunk=3)  # chunks of the gallery: the index-sized path
        t2i, i2t = _naive(bridge, text, images, carries, gallery, queries)
        assert np.allclose(over.t2i(queries), t2i, atol=1e-5) and np.allclose(over.i2t(queries), i2t, atol=1e-5)
    assert bridge_of({}) == OFF and not OFF.active and Bridge().active
    with pytest.raises(ValueError):
        Bridge(tau=0.0)


def test_carries_link_each_bank_caption_to_every_image_that_has_it():
    from rsir.text.bridge import carries_of
    from rsir.text.querybank import distinct_rows

    captions = ["A beach.", "boats", "a beach. ", "a forest", "boats", "boats"]
    rows = distinct_rows(captions)  # bank: "a beach." (row 0), "boats" (1), "a forest" (3)
    got = carries_of(captions, np.array([0, 0, 1, 1, 2, 2]), rows)
    assert got.tolist() == [[0, 0], [0, 1], [1, 0], [1, 2], [2, 1]]


def test_cli_defaults_are_the_pipeline_default():
    """Off by default (its val gain did not hold on test); turned on, the weights are the ones measured."""
    from rsir.cli.text import DEFAULT_BK
    from rsir.text.bridge import OFF, Bridge
    from rsir.text.pipeline import DEFAULT_BRIDGE

    assert DEFAULT_BRIDGE == OFF and DEFAULT_BRIDGE.k == DEFAULT_BK
    assert (Bridge().k, Bridge().weight, Bridge().i2t_weight) == (10, 8.0, 0.2)  # what docs/text.md says


@pytest.fixture(scope="module")
def bridged_model(tiny_captions, tmp_path_factory: pytest.TempPathFactory):
    """A frozen-encoder checkpoint of the tiny set trained with the bridge on (the measured settings)."""
    from rsir.text.bridge import Bridge
    from rsir.text.pipeline import text_config, train

    captions, images = tiny_captions
    out = tmp_path_factory.mktemp("bridged") / "ckpt"
    train(captions, images, out, text_config(epochs=3, batch_size=8, seed=0, finetune=0), progress=False,
          bridge=Bridge())  # fmt: skip
    return out


def test_bridge_is_saved_and_applied_by_eval_search_and_service(tiny_captions, tiny_index, bridged_model):
    """A bridged model carries the memory of its TRAINING set; eval, search and the service score with it as
    the naive bridge predicts."""
    import torch
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app
    from rsir.index.faiss_index import SearchIndex
    from rsir.text.bridge import MEMORY_FILE, GalleryBridge, Memory, bridge_of
    from rsir.text.expansion import expand_gallery, expansion_of
    from rsir.text.pipeline import (
        embed,
        evaluate_checkpoint,
        open_model,
        scene_scores,
        score_matrices,
        split_features_for,
    )
    from rsir.text.querybank import offsets_for
    from rsir.text.search import SceneTextSearch

    captions, images = tiny_captions
    model, manifest, enc = open_model(bridged_model)
    bridge = bridge_of(manifest)
    assert bridge.active and (bridged_model / MEMORY_FILE).is_file()
    memory = Memory.load(bridged_model)
    train = split_features_for(enc, captions, images, "train", None, False)
    train_img, _ = embed(model, train)
    assert np.allclose(memory.images, train_img, atol=1e-5)  # the training images, through the best model
    assert memory.carries[:, 1].max() == len(train.pairs) - 1 and len(memory.carries) <= len(train.captions)

    feats = split_features_for(enc, captions, images, "test", None, False)
    image_emb, text_emb = embed(model, feats)
    over = GalleryBridge(bridge, memory, image_emb)  # the bridge over the test gallery: as the naive formulas say
    t2i, i2t = _naive(bridge, memory.text, memory.images, memory.carries.tolist(), image_emb, text_emb)
    assert np.allclose(over.t2i(text_emb), t2i, atol=1e-5) and np.allclose(over.i2t(text_emb), i2t, atol=1e-5)
    gallery = expand_gallery(image_emb, expansion_of(manifest))
    offsets = offsets_for(bridged_model, manifest, gallery)
    expected = scene_scores(image_emb, text_emb, feats.caption_pair, feats.captions, gallery, offsets, over)
    got = evaluate_checkpoint(bridged_model, captions, images, "test", progress=False)
    for key in ("t2i", "i2t", "t2i_dup_aware"):  # (recalls from matrices equal to ~1e-6: near-ties may differ)
        assert got[key] == pytest.approx(expected[key])
    i2t_sim, t2i_sim = score_matrices(image_emb, text_emb, gallery, offsets, over)
    assert np.allclose(t2i_sim, text_emb @ gallery.T - offsets[None, :] + t2i, atol=1e-5)
    assert np.allclose(i2t_sim, text_emb @ image_emb.T + i2t, atol=1e-5)

    search = SceneTextSearch(SearchIndex(tiny_index), bridged_model)
    q = search.text_vector("a beach with blue sea")
    vectors = torch.from_numpy(np.array(SearchIndex(tiny_index).vectors))
    with torch.inference_mode():  # the index's own vectors through the model: the bridge's gallery, unexpanded
        plain = model.encode_pairs(vectors[:, None].expand(-1, 2, -1), None).numpy()
    naive_q = _naive(bridge, memory.text, memory.images, memory.carries.tolist(), plain, q[None])[0][0]
    expected = search.image_emb @ q - search.offsets + naive_q
    assert np.allclose(search.scores(q), expected, atol=1e-4)
    assert not np.allclose(search.scores(q), search.image_emb @ q - search.offsets, atol=1e-3)  # it does something
    with TestClient(create_search_app(tiny_index, text_model=bridged_model)) as client:
        r = client.get("/api/search/text", params={"q": "a beach with blue sea", "k": 5})
        assert r.status_code == 200, r.text
        scores = [h["score"] for h in r.json()["hits"]]
    assert scores == pytest.approx(sorted(expected, reverse=True)[:5], abs=1e-4)


def test_bridge_options_reach_the_checkpoint_and_off_writes_no_memory(tiny_captions, tmp_path):
    from typer.testing import CliRunner

    from rsir.cli.main import app
    from rsir.text.bridge import MEMORY_FILE
    from rsir.text.pipeline import evaluate_checkpoint

    captions, images = tiny_captions
    base = ["text", "train", str(captions), "--images", str(images), "--epochs", "1", "--batch-size", "8"]
    on, off = tmp_path / "on", tmp_path / "off"
    r = CliRunner().invoke(app, [*base, "--finetune", "0", "--out", str(on), "--bridge-k", "3",
                                 "--bridge-weight", "2", "--bridge-i2t-weight", "0", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = json.loads((on / "manifest.json").read_text())["bridge"]
    assert (saved["k"], saved["weight"], saved["i2t_weight"]) == (3, 2.0, 0.0) and (on / MEMORY_FILE).is_file()
    val = evaluate_checkpoint(on, captions, images, "val", progress=False)  # validation scored with the bridge
    assert val["mR"] == pytest.approx(json.loads((on / "manifest.json").read_text())["val"]["mR"])
    r = CliRunner().invoke(app, [*base, "--finetune", "0", "--out", str(off), "--json"])  # the default: off
    assert r.exit_code == 0, r.output
    assert json.loads((off / "manifest.json").read_text())["bridge"]["k"] == 0 and not (off / MEMORY_FILE).is_file()
    again = CliRunner().invoke(app, [*base, "--finetune", "0", "--epochs", "2", "--out", str(off), "--bridge-k", "10"])
    assert again.exit_code == 2 and "bridge" in again.output  # a run continues only with its own setting
    ignored = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "w"), "--bridge-weight", "4"])
    assert ignored.exit_code == 2 and "--bridge-k" in ignored.output  # a weight without the bridge is refused
    assert not (tmp_path / "w").exists()
