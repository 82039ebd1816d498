"""Text search over a scene index: the CLI (`rsir search --text`, `rsir text eval --json`) and the service."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def text_app(tiny_index, tiny_model, tmp_path_factory):
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app

    app = create_search_app(tiny_index, text_model=tiny_model, cache_dir=tmp_path_factory.mktemp("thumbs"))
    with TestClient(app) as client:
        yield app, client


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_text_queries_find_scenes_with_the_grid_of_image_queries(text_app):
    app, client = text_app
    info = _ok(client.get("/api/info"))
    assert info["scene_text_search"] is True and info["text_search"] is False
    page = client.get("/").text
    assert 'value="text"' in page and 'data-text-gallery="scenes"' in page and 'id="pair-form"' not in page
    q = "many airplanes are parked at the airport"
    body = _ok(client.get("/api/search/text", params={"q": q, "k": 5, "offset": 2}))
    assert body["gallery"] == "scenes" and body["total"] == 32 and len(body["hits"]) == 5
    hit = body["hits"][0]
    assert hit["kind"] == "scene" and hit["rank"] == 3 and hit["thumbnails"][0].startswith("/api/thumbnails/scene")
    search = app.state.service.scene_text
    scores = search.scores(search.text_vector(q))
    ids = app.state.service.scenes.manifest.ids
    expected = [ids[r] for r in sorted(range(len(scores)), key=lambda r: (-scores[r], r))[2:7]]
    assert [h["id"] for h in body["hits"]] == expected
    thumb = client.get(hit["thumbnails"][0])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_text_queries_take_the_scene_filters(text_app):
    _, client = text_app
    body = _ok(client.get("/api/search/text", params={"q": "a beach", "k": 50, "label": "forest"}))
    assert body["total"] == 8 and {tuple(h["labels"]) for h in body["hits"]} == {("forest",)}
    assert client.get("/api/search/text", params={"q": "   "}).status_code == 422
    assert client.get("/api/search/text", params={"q": "x", "gallery": "pairs"}).status_code == 409
    assert client.get("/api/search/text", params={"q": "x", "label": "nope"}).status_code == 422


def test_without_a_text_model_scene_text_search_is_refused(tiny_index, tmp_path):
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app

    with TestClient(create_search_app(tiny_index, cache_dir=tmp_path)) as client:
        r = client.get("/api/search/text", params={"q": "a beach", "gallery": "scenes"})
        assert r.status_code == 409 and "--text-model" in r.json()["detail"]


def test_cli_search_by_text_has_the_hit_format_of_image_queries(tiny_index, tiny_model, tmp_path):
    from rsir.cli.main import app

    runner = CliRunner()
    grid = tmp_path / "hits.png"
    args = ["search", str(tiny_index), "--text", "a dense forest", "--text-model", str(tiny_model), "-k", "4"]
    r = runner.invoke(app, [*args, "--json", "--grid", str(grid)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["query"] == "a dense forest" and [h["rank"] for h in out["hits"]] == [1, 2, 3, 4]
    assert set(out["hits"][0]) == {"rank", "id", "path", "score", "labels"} and grid.is_file()
    image = runner.invoke(app, ["search", str(tiny_index), "--id", out["hits"][0]["id"], "-k", "2", "--json"])
    assert set(json.loads(image.stdout)["hits"][0]) == set(out["hits"][0])
    bad = runner.invoke(app, ["search", str(tiny_index), "--text", "a forest"])
    assert bad.exit_code == 2 and "go together" in bad.output


def test_cli_text_eval_json_and_bad_input(tiny_captions, tiny_model, tmp_path):
    from rsir.cli.main import app

    captions, images = tiny_captions
    runner = CliRunner()
    r = runner.invoke(app, ["text", "eval", str(tiny_model), str(captions), "--images", str(images), "--json"])
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout)
    assert scores["gallery_size"] == 8 and set(scores["t2i"]) == {"r@1", "r@5", "r@10"}
    six = [scores[d][k] for d in ("t2i", "i2t") for k in ("r@1", "r@5", "r@10")]
    assert scores["mR"] == pytest.approx(np.mean(six))
    missing = runner.invoke(app, ["text", "train", str(tmp_path / "no.json"), "--images", str(images), "--out", "x"])
    assert missing.exit_code == 2 and "not found" in missing.output
    not_ckpt = runner.invoke(app, ["text", "eval", str(tmp_path), str(captions), "--images", str(images)])
    assert not_ckpt.exit_code == 2 and "checkpoint" in not_ckpt.output
    info = runner.invoke(app, ["text", "info", str(captions), "--images", str(images)])
    assert info.exit_code == 0 and "32 pairs (scene-captions)" in info.output and "'test': 8" in info.output
