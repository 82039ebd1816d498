"""Fine-tuned text layers (`rsir text train --text-finetune N`): the cached-lower-states path against the whole
encoder, the checkpoint's text layers reaching every query path (eval, search, service)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

SENTENCES = [
    "many planes are parked next to a long terminal",
    "a beach with blue sea",
    "dense forest",
    "boats in a harbor",
    "a road",
]


@pytest.fixture(scope="module")
def minilm():
    from rsir.models.text import load_text_encoder

    return load_text_encoder()


@pytest.mark.parametrize("n_top", [1, 3, 6])
def test_lower_states_then_top_layers_equal_the_whole_encoder(minilm, n_top):
    """The naive reference: the full forward of the encoder (`encode`, one sentence at a time: no padding)."""
    from rsir.models.text import run_layers

    states, mask = minilm.lower_states(SENTENCES, n_top)
    assert states.shape[:2] == mask.shape and states.dtype == torch.float32
    with torch.inference_mode():
        fast = run_layers(minilm.layers[len(minilm.layers) - n_top :], states, mask)
    reference = torch.cat([minilm.encode([s]) for s in SENTENCES])
    assert torch.allclose(fast, reference, atol=1e-5)


def test_tuned_layers_travel_as_a_state_and_change_only_the_top(minilm):
    from rsir.models.text import top_layers_state
    from rsir.train.text_finetune import TunedText

    tuned = TunedText(minilm, 2, SENTENCES, SENTENCES[:3], "cpu")
    with torch.no_grad():
        for p in tuned.layers.parameters():
            p.add_(0.01 * torch.randn_like(p))
    before = minilm.encode(SENTENCES).clone()
    copy = minilm.with_top_layers(top_layers_state(tuned.layers))
    assert torch.equal(minilm.encode(SENTENCES), before)  # the shared pretrained encoder is untouched
    # validation (cached lower states + the learning layers) == the reloaded encoder's whole forward
    assert np.allclose(tuned.encode_val(), copy.encode(SENTENCES[:3]).numpy(), atol=1e-5)
    assert not np.allclose(tuned.encode_val(), before[:3].numpy(), atol=1e-3)
    lower = list(copy.layers)[:-2]
    assert all(
        torch.equal(a, b)
        for la, lb in zip(lower, list(minilm.layers)[:-2], strict=True)
        for a, b in zip(la.parameters(), lb.parameters(), strict=True)
    )
    with pytest.raises(ValueError, match="1..6 layers"):
        minilm.check_top(7)


def test_training_steps_see_the_batch_rows_with_dropout_and_validation_without(minilm):
    from rsir.train.text_finetune import TunedText

    tuned = TunedText(minilm, 1, SENTENCES, SENTENCES, "cpu")
    rows = torch.tensor([3, 0])
    out = tuned.batch(rows)  # a training step (gradients on)
    assert out.shape == (2, minilm.dim) and out.requires_grad and tuned.layers.training  # dropout on
    assert np.allclose(tuned.encode_val()[[3, 0]], minilm.encode([SENTENCES[3], SENTENCES[0]]).numpy(), atol=1e-5)
    assert not tuned.layers.training


def test_text_finetuned_model_trains_saves_and_every_query_path_uses_its_layers(tiny_captions, tiny_index, tmp_path):
    from rsir.index.faiss_index import SearchIndex
    from rsir.itsr.features import text_features
    from rsir.text.pipeline import evaluate_checkpoint, open_model, text_config, train
    from rsir.text.search import SceneTextSearch

    captions, images = tiny_captions
    out = tmp_path / "tt"
    cfg = text_config(epochs=1, batch_size=8, finetune=0, text_finetune=1, text_finetune_lr=1e-3)
    summary = train(captions, images, out, cfg, tmp_path / "cache", progress=False)
    assert summary["epochs_run"] == 1 and (out / "text_encoder.pt").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finetuned_text_layers"] == 1 and manifest["train"]["text_finetune_lr"] == 1e-3
    model, _, enc = open_model(out)
    assert enc.text_weights is not None and enc.text_cache_key != enc.text_hash  # own cache, not the frozen one's
    query = "many airplanes are parked at the airport"
    tuned_vec = enc.text.encode([query])
    pretrained = _pretrained(manifest).text.encode([query])
    assert not torch.allclose(tuned_vec, pretrained, atol=1e-4)  # the layers learned and are loaded
    search = SceneTextSearch(SearchIndex(tiny_index), out)  # the service's and `rsir search --text`'s path
    with torch.inference_mode():
        expected = model.encode_text(tuned_vec).numpy()[0]
    assert np.allclose(search.text_vector(query), expected, atol=1e-6)
    feats_text = text_features([query], enc, tmp_path / "cache", "q", progress=False)  # eval's cached path
    assert np.allclose(feats_text, tuned_vec.numpy(), atol=1e-6)
    scores = evaluate_checkpoint(out, captions, images, "val", cache_dir=tmp_path / "cache", progress=False)
    assert abs(scores["mR"] - summary["val"]["mR"]) < 1e-6  # validation in training == eval (same text vectors)


def _pretrained(manifest):
    from rsir.itsr.pipeline import Encoders

    return Encoders(manifest["config"]["encoder"], manifest["config"]["text_encoder"])


def test_text_finetune_is_refused_where_it_would_do_nothing(tmp_path):
    from rsir.itsr.pipeline import train
    from rsir.train.itsr import ITSRTrainConfig

    with pytest.raises(ValueError, match="text-finetune"):
        train(tmp_path / "none", tmp_path / "out", ITSRTrainConfig(text_finetune=2), progress=False)


def test_cli_refuses_more_text_layers_than_the_encoder_has(tiny_captions, tmp_path):
    from typer.testing import CliRunner

    from rsir.cli.main import app

    captions, images = tiny_captions
    args = ["text", "train", str(captions), "--images", str(images), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, [*args, "--text-finetune", "7", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 2 and "1..6 layers" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "c").exists()  # refused before any feature was computed
