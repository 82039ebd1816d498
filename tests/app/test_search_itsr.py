"""Text and before/after pair search through the API, with a tiny text-ITSR checkpoint and its pair gallery."""

from __future__ import annotations

import io

import pytest
from PIL import Image


@pytest.fixture(scope="module")
def itsr_client(itsr_app):
    from fastapi.testclient import TestClient

    with TestClient(itsr_app) as c:
        yield c


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _pair_files(itsr_app, row: int) -> dict:
    p = itsr_app.state.service.pairs.pairs[row]
    return {
        "before": ("before.png", p.before.read_bytes(), "image/png"),
        "after": ("after.png", p.after.read_bytes(), "image/png"),
    }


def test_info_and_page_offer_text_search(itsr_client):
    info = _ok(itsr_client.get("/api/info"))
    assert info["text_search"] is True and info["pairs"] == 4
    page = itsr_client.get("/").text
    assert 'value="text"' in page and 'id="pair-form"' in page


def test_text_search_ranks_the_pair_gallery(itsr_client):
    page = _ok(itsr_client.get("/api/search/text", params={"q": "new buildings appeared", "k": 10}))
    assert page["query"] == {"kind": "text", "value": "new buildings appeared"} and page["gallery"] == "pairs"
    assert page["total"] == 4 and len(page["hits"]) == 4
    scores = [h["score"] for h in page["hits"]]
    assert scores == sorted(scores, reverse=True) and all(-1.0001 <= s <= 1.0001 for s in scores)
    for hit in page["hits"]:
        assert hit["kind"] == "pair" and len(hit["thumbnails"]) == 2 and hit["captions"]
        assert "side=before" in hit["thumbnails"][0] and "side=after" in hit["thumbnails"][1]
    halves = [
        _ok(itsr_client.get("/api/search/text", params={"q": "new buildings appeared", "k": 2, "offset": o}))["hits"]
        for o in (0, 2)
    ]
    assert [h["id"] for h in halves[0] + halves[1]] == [h["id"] for h in page["hits"]]
    changed = _ok(itsr_client.get("/api/search/text", params={"q": "a road", "changed": True}))
    assert changed["hits"] and all(h["changed"] is True for h in changed["hits"])


def test_pair_upload_finds_the_same_pair_and_fitting_captions(itsr_client, itsr_app):
    page = _ok(itsr_client.post("/api/search/pair", files=_pair_files(itsr_app, 1), params={"k": 4}))
    gallery = itsr_app.state.service.pairs.pairs
    assert page["query"]["kind"] == "pair" and page["hits"][0]["id"] == gallery[1].id
    assert page["hits"][0]["score"] == pytest.approx(1, abs=1e-2)
    assert page["captions"] and len({c["caption"].lower() for c in page["captions"]}) == len(page["captions"])

    more = _ok(itsr_client.get("/api/search/pair-id", params={"id": gallery[1].id}))
    assert more["total"] == 3 and gallery[1].id not in {h["id"] for h in more["hits"]}
    assert more["captions"]


def test_pair_details_and_thumbnails(itsr_client, itsr_app):
    pair_id = itsr_app.state.service.pairs.pairs[0].id
    detail = _ok(itsr_client.get("/api/pairs", params={"id": pair_id}))
    assert detail["split"] == "test" and len(detail["captions"]) == 5 and len(detail["previews"]) == 2
    for url in detail["thumbnails"]:
        response = itsr_client.get(url)
        assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).format == "JPEG"
    assert itsr_client.get("/api/pairs", params={"id": "test/none"}).status_code == 404
    bad_side = itsr_client.get("/api/thumbnails/pair", params={"id": pair_id, "side": "middle"})
    assert bad_side.status_code == 422 and "side" in bad_side.json()["detail"]


def test_bad_text_and_pair_queries_get_4xx(itsr_client, itsr_app):
    for q in ("   ", "x" * 501):
        response = itsr_client.get("/api/search/text", params={"q": q})
        assert response.status_code == 422 and "q" in response.json()["detail"]
    files = _pair_files(itsr_app, 0)
    files["after"] = ("after.png", b"\x89PNG\r\n\x1a\n broken", "image/png")
    response = itsr_client.post("/api/search/pair", files=files)
    assert response.status_code == 400 and response.json()["detail"].startswith("after: cannot use this image")
    response = itsr_client.post("/api/search/pair", files={"before": files["before"]})
    assert response.status_code == 422 and "after" in response.json()["detail"]
