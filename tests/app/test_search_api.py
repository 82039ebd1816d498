"""The search API in-process (FastAPI TestClient) on the real demo index: results, paging, filters, errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsir.data.demo import demo_archive_path

DEMO_ID = "airplane/airplane00"


def _jpeg(item_id: str) -> bytes:
    return (demo_archive_path() / f"{item_id}.jpg").read_bytes()


def _upload(data: bytes, name: str = "q.jpg", ctype: str = "image/jpeg") -> dict:
    return {"file": (name, data, ctype)}


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _fails(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)
    for word in words:
        assert word in body["detail"]
    assert "Traceback" not in body["detail"] and "/tmp" not in body["detail"]
    return body["detail"]


def test_info_describes_the_index(client):
    info = _ok(client.get("/api/info"))
    assert info["items"] == 168 and info["encoder"] == "efficientnet-lite0" and info["dim"] == 1280
    assert len(info["labels"]) == 21 and {lab["count"] for lab in info["labels"]} == {8}
    assert info["filters"] == ["label"]  # the demo archive carries no dates or bounding boxes
    assert info["text_search"] is False


def test_search_by_id_ranks_neighbours_and_leaves_the_item_out(client):
    page = _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 10}))
    assert page["query"] == {"kind": "id", "value": DEMO_ID} and page["gallery"] == "scenes"
    assert page["total"] == 167 and len(page["hits"]) == 10
    assert [h["rank"] for h in page["hits"]] == list(range(1, 11))
    scores = [h["score"] for h in page["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert DEMO_ID not in {h["id"] for h in page["hits"]}
    # real UC Merced features: most near neighbours of an airplane scene are airplanes (chance: 7 in 167).
    # Over every airplane query, since one scene alone may have a sparse-residential look-alike or three.
    top5 = [
        h["labels"] == ["airplane"]
        for n in range(8)
        for h in _ok(client.get("/api/search/id", params={"id": f"airplane/airplane{n:02d}", "k": 5}))["hits"]
    ]
    assert len(top5) == 40 and sum(top5) > len(top5) / 2
    first = page["hits"][0]
    assert first["kind"] == "scene" and first["thumbnails"][0].startswith("/api/thumbnails/scene?id=")

    with_self = _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 1, "include_self": True}))
    assert with_self["hits"][0]["id"] == DEMO_ID and with_self["hits"][0]["score"] == pytest.approx(1, abs=1e-4)


def test_pages_join_into_the_long_list(client):
    whole = _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 30}))["hits"]
    pages = [
        _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 10, "offset": o}))["hits"] for o in (0, 10, 20)
    ]
    assert [h["id"] for p in pages for h in p] == [h["id"] for h in whole]
    assert pages[1][0]["rank"] == 11
    tail = _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 10, "offset": 160}))
    assert len(tail["hits"]) == 7 and tail["hits"][-1]["rank"] == 167
    beyond = _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 10, "offset": 500}))
    assert beyond["hits"] == [] and beyond["total"] == 167


def test_label_filter(client):
    page = _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 50, "label": "beach"}))
    assert page["total"] == 8 and len(page["hits"]) == 8
    assert all(h["labels"] == ["beach"] for h in page["hits"])
    own = _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 50, "label": "airplane"}))
    assert own["total"] == 7 and DEMO_ID not in {h["id"] for h in own["hits"]}
    two = _ok(
        client.get("/api/search/id", params=[("id", DEMO_ID), ("k", 50), ("label", "beach"), ("label", "forest")])
    )
    assert two["total"] == 16 and {h["labels"][0] for h in two["hits"]} == {"beach", "forest"}
    _fails(client.get("/api/search/id", params={"id": DEMO_ID, "label": "volcano"}), 422, "volcano")


def test_search_by_uploaded_image_finds_that_scene_first(client):
    page = _ok(client.post("/api/search/image", files=_upload(_jpeg("beach/beach03")), params={"k": 5}))
    assert page["query"] == {"kind": "image", "value": None} and page["total"] == 168
    assert page["hits"][0]["id"] == "beach/beach03" and page["hits"][0]["score"] == pytest.approx(1, abs=1e-3)
    png = io.BytesIO()
    Image.open(demo_archive_path() / "forest" / "forest02.jpg").save(png, format="PNG")
    as_png = _ok(client.post("/api/search/image", files=_upload(png.getvalue(), "q.png", "image/png"), params={"k": 3}))
    assert as_png["hits"][0]["id"] == "forest/forest02"
    filtered = _ok(
        client.post("/api/search/image", files=_upload(_jpeg("beach/beach03")), params={"k": 5, "label": "forest"})
    )
    assert filtered["total"] == 8 and all(h["labels"] == ["forest"] for h in filtered["hits"])


def test_date_and_bbox_filters(geo_index: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app

    client = TestClient(create_search_app(geo_index, cache_dir=tmp_path))
    assert _ok(client.get("/api/info"))["filters"] == ["label", "date", "bbox"]
    row_dates = {}
    params = {"id": DEMO_ID, "k": 200, "date_from": "2020-02-01", "date_to": "2020-02-10"}
    page = _ok(client.get("/api/search/id", params=params))
    for hit in page["hits"]:
        row_dates[hit["id"]] = _ok(client.get("/api/items", params={"id": hit["id"]}))["meta"]["date"]
    assert page["total"] == 10 and all("2020-02-01" <= d <= "2020-02-10" for d in row_dates.values())
    # bbox of row i: [i % 10, i // 10, i % 10 + .5, i // 10 + .5]; this box meets rows with i % 10 in {2, 3}, i < 50
    page = _ok(client.get("/api/search/id", params={"id": DEMO_ID, "k": 200, "bbox": "2.2,0,3.1,4.9"}))
    assert page["total"] == 10
    for hit in page["hits"]:
        w, s, e, n = _ok(client.get("/api/items", params={"id": hit["id"]}))["meta"]["bbox"]
        assert w <= 3.1 and e >= 2.2 and s <= 4.9
    _fails(client.get("/api/search/id", params={"id": DEMO_ID, "bbox": "1,2,3"}), 422, "bbox")
    _fails(client.get("/api/search/id", params={"id": DEMO_ID, "bbox": "3,0,1,1"}), 422, "bbox")
    _fails(client.get("/api/search/id", params={"id": DEMO_ID, "date_from": "yesterday"}), 422, "date_from")


def test_item_details_and_cached_thumbnails(client, search_app):
    item = _ok(client.get("/api/items", params={"id": DEMO_ID}))
    assert item["labels"] == ["airplane"] and item["path"] == "airplane/airplane00.jpg"
    assert item["meta"]["width"] == 256 and not item["path"].startswith("/")
    thumbs = search_app.state.service.thumbs
    before = thumbs.generated
    first = client.get(item["thumbnail"])
    second = client.get(item["thumbnail"])
    assert first.status_code == second.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.content == second.content and thumbs.generated == before + 1  # rendered once
    assert Image.open(io.BytesIO(first.content)).size == (256, 256)
    big = client.get(item["preview"])
    assert Image.open(io.BytesIO(big.content)).size == (256, 256)  # never upscaled past the source
    small = client.get("/api/thumbnails/scene", params={"id": DEMO_ID, "size": 128})
    assert Image.open(io.BytesIO(small.content)).size == (128, 128)
    _fails(client.get("/api/thumbnails/scene", params={"id": DEMO_ID, "size": 100}), 422, "size")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"id": DEMO_ID, "k": 0}, ["k"]),
        ({"id": DEMO_ID, "k": 1001}, ["k", "1000"]),
        ({"id": DEMO_ID, "k": "many"}, ["k"]),
        ({"id": DEMO_ID, "offset": -1}, ["offset"]),
        ({}, ["id"]),
    ],
)
def test_bad_query_parameters_get_422(client, params, words):
    _fails(client.get("/api/search/id", params=params), 422, *words)


def test_unknown_ids_get_404(client):
    for path in ("/api/search/id", "/api/items", "/api/thumbnails/scene"):
        _fails(client.get(path, params={"id": "../../etc/passwd"}), 404, "unknown item id")


def test_bad_uploads_get_clear_4xx(client, search_app):
    jpeg = _jpeg("beach/beach03")
    _fails(client.post("/api/search/image", json={"file": "x"}), 415, "multipart/form-data")
    _fails(client.post("/api/search/image", files=_upload(b"hello", "q.txt", "text/plain")), 415, "text/plain")
    _fails(client.post("/api/search/image", files=_upload(b"not an image at all")), 400, "cannot use this image")
    _fails(client.post("/api/search/image", files=_upload(jpeg[: len(jpeg) // 2])), 400, "truncated")
    _fails(client.post("/api/search/image", files=_upload(b"")), 400, "empty")
    tiny = io.BytesIO()
    Image.new("RGB", (4, 4)).save(tiny, format="PNG")
    _fails(client.post("/api/search/image", files=_upload(tiny.getvalue(), "t.png", "image/png")), 400, "too small")
    _fails(client.post("/api/search/image", data={"k": "3"}), 415, "x-www-form-urlencoded")
    _fails(client.post("/api/search/image", files={"image": ("q.jpg", jpeg, "image/jpeg")}), 422, "file")


def test_oversized_uploads_get_413(demo_index: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app

    client = TestClient(create_search_app(demo_index, cache_dir=tmp_path, max_upload_bytes=2000))
    jpeg = _jpeg("beach/beach03")  # ~30 kB: over the per-file limit, under the body limit
    _fails(client.post("/api/search/image", files=_upload(jpeg)), 413, "larger than 2000 bytes")
    huge = np.random.default_rng(0).integers(0, 255, 200_000, dtype=np.uint8).tobytes()
    _fails(client.post("/api/search/image", files=_upload(huge)), 413, "larger than")  # refused before reading
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="q.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    body = head + huge + b"\r\n--B--\r\n"
    chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))  # no Content-Length: counted as it streams
    streamed = client.post(
        "/api/search/image", content=chunks, headers={"content-type": "multipart/form-data; boundary=B"}
    )
    _fails(streamed, 413, "larger than")


def _huge_deflate_tiff(path: Path, side: int = 20000, bands: int = 1, dtype: str = "uint8") -> bytes:
    """A GeoTIFF of empty deflate tiles: 20000 x 20000 px grey is ~0.4 MB on disk, 400 MP (1.6 GB as float32)."""
    import warnings

    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not georeferenced
        profile = {"width": side, "height": side, "count": bands, "dtype": dtype, "compress": "deflate",
                   "tiled": True, "blockxsize": 1024, "blockysize": 1024, "interleave": "band"}  # fmt: skip
        with rasterio.open(path, "w", driver="GTiff", **profile):
            pass
    return path.read_bytes()


def test_uploads_with_too_many_pixels_get_413_before_decoding(client, tmp_path: Path):
    import tracemalloc

    data = _huge_deflate_tiff(tmp_path / "bomb.tif")
    assert len(data) < 1_000_000
    client.post("/api/search/image", files=_upload(_jpeg(DEMO_ID)))  # the encoder is loaded: not counted below
    tracemalloc.start()
    try:
        response = client.post("/api/search/image", files=_upload(data, "bomb.tif", "image/tiff"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _fails(response, 413, "too large", "20000x20000")
    assert peak < 30_000_000  # decoding it would take 400 MB (uint8) + 1.6 GB (float32) of numpy arrays
    # few pixels but 200 16-bit bands (GDAL reads them all): 200 M values also exceed the cap (4 per pixel of it)
    bands = _huge_deflate_tiff(tmp_path / "bands.tif", side=1000, bands=200, dtype="uint16")
    tracemalloc.start()
    try:
        response = client.post("/api/search/image", files=_upload(bands, "bands.tif", "image/tiff"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _fails(response, 413, "too large", "1000x1000 px x 200 bands")
    assert peak < 30_000_000
    files = {"before": ("a.tif", data, "image/tiff"), "after": ("b.jpg", _jpeg(DEMO_ID), "image/jpeg")}
    assert client.post("/api/search/pair", files=files).status_code == 409  # no model: refused before reading


def test_the_upload_pixel_cap_is_configurable(demo_index: Path, tmp_path: Path, monkeypatch):
    from fastapi.testclient import TestClient

    from rsir.app.search import app_from_env

    for key, value in {"INDEX": str(demo_index), "CACHE": str(tmp_path), "MAX_PIXELS": str(200 * 200)}.items():
        monkeypatch.setenv(f"RSIR_SERVE_{key}", value)  # what `rsir serve --max-upload-megapixels 0.04` sets
    client = TestClient(app_from_env())
    assert _ok(client.get("/api/info"))["max_upload_pixels"] == 40_000
    _fails(client.post("/api/search/image", files=_upload(_jpeg(DEMO_ID))), 413, "256x256", "40000")
    small = io.BytesIO()
    Image.open(demo_archive_path() / f"{DEMO_ID}.jpg").resize((200, 200)).save(small, format="PNG")
    page = _ok(client.post("/api/search/image", files=_upload(small.getvalue(), "q.png", "image/png")))
    assert page["hits"][0]["id"] == DEMO_ID


def test_text_and_pair_search_without_a_model_say_how_to_get_one(client):
    _fails(client.get("/api/search/text", params={"q": "new buildings"}), 409, "--itsr")
    files = {"before": ("a.jpg", _jpeg(DEMO_ID), "image/jpeg"), "after": ("b.jpg", _jpeg(DEMO_ID), "image/jpeg")}
    _fails(client.post("/api/search/pair", files=files), 409, "--itsr")
    _fails(client.get("/api/search/pair-id", params={"id": "x"}), 409, "--itsr")
    _fails(client.get("/api/pairs", params={"id": "test/x"}), 409, "--itsr")  # was a 500
    _fails(client.get("/api/thumbnails/pair", params={"id": "test/x", "side": "before"}), 409, "--itsr")


def test_unexpected_errors_are_500_json_without_details(demo_index: Path, tmp_path: Path, monkeypatch):
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app

    app = create_search_app(demo_index, cache_dir=tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/private")

    monkeypatch.setattr(app.state.service.scenes, "ranked", broken)
    response = TestClient(app, raise_server_exceptions=False).get("/api/search/id", params={"id": DEMO_ID})
    assert response.status_code == 500 and response.json() == {"detail": "internal error (see the server log)"}


def test_openapi_documents_every_search(client):
    spec = _ok(client.get("/openapi.json"))
    paths = spec["paths"]
    for path in ("/api/search/id", "/api/search/text", "/api/search/pair-id", "/api/items", "/api/info"):
        assert "get" in paths[path]
    for path in ("/api/search/image", "/api/search/pair"):
        assert "multipart/form-data" in paths[path]["post"]["requestBody"]["content"]
    k = next(p for p in paths["/api/search/id"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1 and k["schema"]["maximum"] == 1000
    assert {"SearchResponse", "Hit", "ErrorResponse"} <= set(spec["components"]["schemas"])


def test_page_is_served_without_outside_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="drop"' in page.text and 'id="results"' in page.text
    assert 'value="text"' not in page.text  # no text mode without a model
    for asset in ("/static/search.js", "/static/search.css"):
        body = client.get(asset)
        assert body.status_code == 200 and "http://" not in body.text and "https://" not in body.text
    assert "https://" not in page.text and "http://" not in page.text


def test_concurrent_searches_are_batched_with_the_same_results(demo_index: Path):
    from concurrent.futures import ThreadPoolExecutor

    from rsir.app.search.models import Filters
    from rsir.app.search.scenes import SceneGallery

    gallery = SceneGallery(demo_index)
    rows = list(range(0, 168, 7))
    expected = {}
    for r in rows:  # one query at a time, straight through FAISS
        _, found = gallery.index.index.search(gallery.vector_of(r), 6)
        expected[r] = [int(x) for x in found[0] if x != r][:5]
    with ThreadPoolExecutor(len(rows)) as pool:
        found = pool.map(lambda r: gallery.ranked(gallery.vector_of(r), Filters(), 0, 5, r), rows)
        results = dict(zip(rows, found, strict=True))
    assert {r: [row for row, _ in res[1]] for r, res in results.items()} == expected
    assert gallery.batcher.batches < len(rows)  # some queries shared a batch


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_filters_on_approximate_indexes(demo_index: Path, tmp_path: Path, kind: str):
    from dataclasses import replace

    from rsir.app.search.models import Filters
    from rsir.app.search.scenes import SceneGallery
    from rsir.index.faiss_index import IndexParams, SearchIndex, build_index, save_index

    src = SearchIndex(demo_index)
    vectors = np.asarray(src.vectors)
    index = build_index(vectors, IndexParams(index_type=kind, nbits=4, nprobe=4))
    save_index(tmp_path / kind, index, vectors, replace(src.manifest, index_type=kind))
    gallery = SceneGallery(tmp_path / kind)
    row = gallery.row_of(DEMO_ID)
    total, hits = gallery.ranked(gallery.vector_of(row), Filters(labels=("beach",)), 0, 5, row)
    assert total == 8 and len(hits) == 5
    assert all(gallery.manifest.labels[r] == ["beach"] for r, _ in hits)
