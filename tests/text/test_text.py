"""Text <-> scene retrieval: the published protocol against a naive reference, training, evaluation, search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


def _naive_recall(sim: np.ndarray, hits: list[set[int]], k: int) -> float:
    """Percent of queries with a hit in the top k, ranking by score then index (the stable order)."""
    scored = 0
    for q, row in enumerate(sim):
        order = sorted(range(len(row)), key=lambda g: (-row[g], g))[:k]
        scored += any(g in hits[q] for g in order)
    return 100.0 * scored / len(sim)


def test_scene_scores_match_a_naive_reference():
    from rsir.text.pipeline import scene_scores

    rng = np.random.default_rng(0)
    n_images, per = 12, 3
    captions = [f"scene of kind {rng.integers(0, 5)}" for _ in range(n_images * per)]  # many duplicates
    caption_image = np.repeat(np.arange(n_images), per)
    image_emb = rng.normal(size=(n_images, 8)).astype(np.float32)
    text_emb = rng.normal(size=(len(captions), 8)).astype(np.float32)
    text_emb[:3] = text_emb[3]  # identical query vectors: ties
    out = scene_scores(image_emb, text_emb, caption_image, captions)
    sim = text_emb @ image_emb.T
    own = [{int(i)} for i in caption_image]
    carriers = [{int(caption_image[j]) for j, d in enumerate(captions) if d == c} for c in captions]
    image_captions = [set(np.flatnonzero(caption_image == i)) for i in range(n_images)]
    for k in (1, 5, 10):
        assert out["t2i"][f"r@{k}"] == pytest.approx(_naive_recall(sim, own, k))
        assert out["i2t"][f"r@{k}"] == pytest.approx(_naive_recall(sim.T, image_captions, k))
        assert out["t2i_dup_aware"][f"r@{k}"] == pytest.approx(_naive_recall(sim, carriers, k))
        assert out["t2i_dup_aware"][f"r@{k}"] >= out["t2i"][f"r@{k}"]
    six = [out[d][f"r@{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10)]
    assert out["mR"] == pytest.approx(np.mean(six))
    assert (out["gallery_size"], out["queries"]) == (n_images, n_images * per)


def test_dihedral_turns_and_mirrors_maps():
    from rsir.text.tail import dihedral

    maps = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = dihedral(maps, torch.tensor([1, 6]))
    assert torch.equal(out[0], torch.rot90(maps[0], 1, dims=(-2, -1)))
    assert torch.equal(out[1], torch.rot90(maps[1].flip(-1), 2, dims=(-2, -1)))
    assert torch.equal(dihedral(maps, torch.tensor([0, 0])), maps)


def test_train_and_evaluate_on_real_captions(tiny_captions, tiny_model):
    from rsir.text.pipeline import evaluate_checkpoint

    captions, images = tiny_captions
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    assert manifest["config"]["fusion"] == "after" and manifest["dataset"]["train_images"] == 20
    from rsir.data.captions import open_scene_captions

    by_id = {p.id: p for p in open_scene_captions(captions, images).pairs}  # a partial copy keeps UCM's numbering
    assert "plane" in by_id["airplane/airplane03"].captions[0] and "beach" in by_id["beach/beach07"].captions[0]
    scores = evaluate_checkpoint(tiny_model, captions, images, "test", progress=False)
    assert scores["gallery_size"] == 8 and scores["queries"] == 40
    assert set(scores) >= {"t2i", "i2t", "mR", "t2i_dup_aware"}
    assert 0 <= scores["mR"] <= 100 and scores["t2i"]["r@10"] == 100.0  # a gallery of 8: everything is in the top 10


def test_finetuned_tail_trains_saves_and_evaluates(tiny_captions, tmp_path):
    from rsir.text.pipeline import evaluate_checkpoint, text_config, train

    captions, images = tiny_captions
    out = tmp_path / "ft"
    summary = train(
        captions, images, out, text_config(epochs=1, batch_size=8, finetune=1), progress=False, augment=True
    )
    assert summary["epochs_run"] == 1
    assert (out / "encoder.pt").is_file()  # the tuned encoder travels with the checkpoint
    assert json.loads((out / "manifest.json").read_text())["augment"] is True
    scores = evaluate_checkpoint(out, captions, images, "test", progress=False)
    assert scores["gallery_size"] == 8
    with pytest.raises(ValueError, match="augment=True"):  # a run continues only with its own settings
        train(captions, images, out, text_config(epochs=2, batch_size=8, finetune=1), progress=False, augment=False)


def test_augment_needs_finetuning(tiny_captions, tmp_path):
    from rsir.text.pipeline import text_config, train

    with pytest.raises(ValueError, match="needs --finetune"):
        train(*tiny_captions, tmp_path / "x", text_config(epochs=1, finetune=0), progress=False, augment=True)


def test_index_vectors_and_reencoded_files_give_the_same_gallery(tiny_index, tiny_model):
    """The shortcut (the index's own vectors) against the reference path (encoding the indexed files)."""
    from rsir.index.faiss_index import SearchIndex
    from rsir.text.pipeline import open_model
    from rsir.text.search import SceneTextSearch, index_globals

    index = SearchIndex(tiny_index)
    search = SceneTextSearch(index, tiny_model)
    _, manifest, enc = open_model(tiny_model)
    reencoded = index_globals(index, {"config": {**manifest["config"], "encoder": "other"}}, enc)
    shortcut = np.asarray(index.vectors)
    assert reencoded.shape == shortcut.shape
    assert np.allclose(reencoded / np.linalg.norm(reencoded, axis=1, keepdims=True), shortcut, atol=1e-4)
    with torch.inference_mode():
        g = torch.from_numpy(reencoded)[:, None].expand(-1, 2, -1)
        ref = search.model.encode_pairs(g, None).numpy()
    from rsir.text.expansion import expand_gallery, expansion_of

    assert expansion_of(manifest).active  # the default: the index's scenes are expanded once at load
    ref = expand_gallery(ref, expansion_of(manifest))
    # Equal up to the LayerNorm epsilon, which sees the index's L2-normalised vectors at another scale.
    assert np.allclose(ref, search.image_emb, atol=1e-3)
    q = search.text_vector("a beach with blue sea")
    assert np.allclose(ref @ q, search.image_emb @ q, atol=1e-3)


def test_text_search_ranks_scenes_like_a_full_sort(tiny_index, tiny_model):
    from rsir.index.faiss_index import SearchIndex
    from rsir.text.search import SceneTextSearch

    search = SceneTextSearch(SearchIndex(tiny_index), tiny_model)
    q = search.text_vector("many airplanes are parked at the airport")
    scores = search.scores(q)  # cosine less the querybank offsets (tests/text/test_text_querybank.py)
    full = sorted(range(len(scores)), key=lambda r: (-scores[r], r))
    total, page = search.ranked(q, 3, 5)
    assert total == 32 and [r for r, _ in page] == full[3:8]
    mask = np.zeros(32, dtype=bool)
    mask[::3] = True
    total, page = search.ranked(q, 0, 100, mask)
    assert total == int(mask.sum()) and [r for r, _ in page] == [r for r in full if mask[r]]
    total, hits = search.search("many airplanes are parked at the airport", k=4)
    assert total == len(search)
    assert [h.rank for h in hits] == [1, 2, 3, 4] and hits[0].id == search.index.manifest.ids[full[0]]
    # filters and paging: the page `rsir search --text` and /api/search/text both answer from
    from rsir.index.filters import Filters

    label = search.index.manifest.labels[full[0]][0]
    keep = np.array([label in ls for ls in search.index.manifest.labels])
    total, hits = search.search("many airplanes are parked at the airport", k=3, filters=Filters((label,)), offset=1)
    assert total == int(keep.sum()) and [h.rank for h in hits] == [2, 3, 4][: len(hits)]
    assert [h.id for h in hits] == [search.index.manifest.ids[r] for r in full if keep[r]][1:4]
    with pytest.raises(ValueError, match="blank"):
        search.text_vector("   ")


def test_ranked_pages_break_ties_by_row_across_the_page_boundary():
    """Equal scores straddling the last rank of a page: the lower row comes first, as the full sort says."""
    from rsir.text.search import SceneTextSearch

    rng = np.random.default_rng(0)
    search = SceneTextSearch.__new__(SceneTextSearch)  # only the ranking: no model, no index
    search.offsets = search.bridge = None
    for _ in range(50):
        levels = rng.integers(0, 4, size=40).astype(np.float32)  # many exact ties
        search.image_emb = levels[:, None]
        full = sorted(range(40), key=lambda r: (-levels[r], r))
        for offset, k in ((0, 5), (3, 7), (10, 1)):
            _, page = search.ranked(np.ones(1, dtype=np.float32), offset, k)
            assert [r for r, _ in page] == full[offset : offset + k]
