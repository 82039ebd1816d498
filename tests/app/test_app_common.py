"""Shared app helpers: files stay inside the archive root, thumbnails are made once, the token guards every
request, and the service refuses to go on the network without one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rsir.app.common import BindError, OutsideRoot, ThumbnailCache, check_bind, is_loopback, safe_path
from rsir.data.demo import demo_archive_path

SCENE = demo_archive_path() / "beach" / "beach00.jpg"
TOKEN = "s3cret-s3cret-s3cret"


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """root/ with one scene and a symlink to a secret image outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "scenes").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(SCENE, root / "scenes" / "a.jpg")
    shutil.copy(SCENE, outside / "secret.jpg")
    (root / "scenes" / "link.jpg").symlink_to(outside / "secret.jpg")
    (root / "scenes" / "dirlink").symlink_to(outside, target_is_directory=True)
    return root, outside


def test_safe_path_keeps_inside_the_root(tree):
    root, outside = tree
    assert safe_path(root, "scenes/a.jpg") == (root / "scenes" / "a.jpg").resolve()
    assert safe_path(root, root / "scenes" / "a.jpg") == (root / "scenes" / "a.jpg").resolve()
    assert safe_path(root, "scenes/../scenes/a.jpg") == (root / "scenes" / "a.jpg").resolve()
    for bad in (
        "../outside/secret.jpg",
        "scenes/../../outside/secret.jpg",
        str(outside / "secret.jpg"),
        "/etc/passwd",
        "scenes/link.jpg",
        "scenes/dirlink/secret.jpg",
        root.parent / "root-sibling.jpg",
    ):
        with pytest.raises(OutsideRoot):
            safe_path(root, bad)


def _tiny_index(tree, out: Path) -> Path:
    """An index whose manifest names files inside and outside its root (as a tampered manifest could)."""
    from rsir.index.faiss_index import build_index, save_index
    from rsir.index.manifest import IndexManifest

    root, outside = tree
    paths = [
        root / "scenes" / "a.jpg",
        root / "scenes" / "link.jpg",
        root / "scenes" / ".." / ".." / "outside" / "secret.jpg",
        outside / "secret.jpg",
        root / "scenes" / "gone.jpg",
    ]
    ids = ["a", "link", "dotdot", "absolute", "gone"]
    vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    manifest = IndexManifest(
        encoder="efficientnet-lite0",
        weights_hash="x",
        dim=8,
        metric="cosine",
        index_type="flat",
        ids=ids,
        paths=[str(p) for p in paths],
        labels=[["beach"]] * len(ids),
        archive_root=str(root.resolve()),
    )
    save_index(out, build_index(vectors), vectors, manifest)
    return out


def test_thumbnails_never_read_outside_the_root(tree, tmp_path: Path):
    from rsir.app.search import create_search_app

    client = TestClient(create_search_app(_tiny_index(tree, tmp_path / "index"), cache_dir=tmp_path / "thumbs"))
    assert client.get("/api/thumbnails/scene", params={"id": "a"}).status_code == 200
    for item_id in ("link", "dotdot", "absolute"):
        response = client.get("/api/thumbnails/scene", params={"id": item_id})
        assert response.status_code == 403 and "outside the archive root" in response.json()["detail"]
    assert client.get("/api/thumbnails/scene", params={"id": "gone"}).status_code == 404
    assert client.get("/api/items", params={"id": "absolute"}).json()["path"] == "secret.jpg"  # no outside path


def test_thumbnail_cache_renders_once_and_survives_restarts(tmp_path: Path):
    from PIL import Image

    cache = ThumbnailCache(tmp_path / "thumbs")
    first = cache.get(SCENE, 128)
    assert cache.get(SCENE, 128) == first and cache.generated == 1
    assert Image.open(first).size == (128, 128)
    assert cache.get(SCENE, 256) != first and cache.generated == 2  # one file per size
    again = ThumbnailCache(tmp_path / "thumbs")
    assert again.get(SCENE, 128) == first and again.generated == 0  # a new process reuses the disk cache


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_detection(host: str, loopback: bool):
    assert is_loopback(host) is loopback


def test_network_bind_needs_a_token():
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(BindError, match="--token"):
        check_bind("0.0.0.0", None)


@pytest.mark.parametrize(
    ("token", "why"),
    [("", "empty"), ("   ", "empty"), ("\t\n", "empty"), ("s3cret", "too short"), (" " * 20, "empty"),
     ("s3cret s3cret s3cret", "no spaces"), ("s3cret-s3cret-s3crét", "ASCII")],
)  # fmt: skip
def test_empty_blank_or_short_tokens_are_refused(demo_index: Path, tmp_path: Path, token: str, why: str):
    from rsir.app.search import create_search_app

    for host in ("127.0.0.1", "0.0.0.0"):
        with pytest.raises(BindError, match=why):
            check_bind(host, token)
    with pytest.raises(BindError, match=why):
        create_search_app(demo_index, cache_dir=tmp_path, token=token)  # the library refuses it too


def test_the_cli_refuses_a_blank_token_before_anything_else(tmp_path: Path, monkeypatch):
    from rsir.cli.main import app

    monkeypatch.delenv("RSIR_TOKEN", raising=False)
    missing = str(tmp_path / "no-index")  # checked after the token: the old code stopped here, not at the token
    for args in (["serve", missing], ["anneal", "serve", missing, "--campaign", "c", "--db", str(tmp_path / "d.db")]):
        for token in ("   ", "short"):
            result = CliRunner().invoke(app, [*args, "--host", "0.0.0.0", "--token", token])
            assert result.exit_code == 2 and "token" in result.output and "Traceback" not in result.output, args
    monkeypatch.setenv("RSIR_TOKEN", "   ")
    result = CliRunner().invoke(app, ["serve", missing])
    assert result.exit_code == 2 and "the token is empty" in result.output


def test_serve_refuses_a_network_bind_without_token(demo_index: Path, monkeypatch):
    from rsir.cli.main import app

    monkeypatch.delenv("RSIR_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", str(demo_index), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--token" in result.output and "RSIR_TOKEN" in result.output
    result = CliRunner().invoke(app, ["serve", str(demo_index.parent / "nothing-here")])
    assert result.exit_code == 2 and "not an rsir index" in result.output


def test_token_guards_every_request(demo_index: Path, tmp_path: Path):
    from rsir.app.search import create_search_app

    app = create_search_app(demo_index, cache_dir=tmp_path, token=TOKEN)
    client = TestClient(app)
    for path in ("/", "/api/info", "/openapi.json", "/static/search.js", "/api/thumbnails/scene?id=beach/beach00"):
        response = client.get(path)
        assert response.status_code == 401 and "token" in response.json()["detail"], path
    assert client.get("/api/info", headers={"X-RSIR-Token": "wrong"}).status_code == 401
    assert client.get("/api/info", headers={"X-RSIR-Token": TOKEN}).status_code == 200
    assert client.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    upload = {"file": ("q.jpg", SCENE.read_bytes(), "image/jpeg")}
    assert client.post("/api/search/image", files=upload).status_code == 401  # uploads too

    page = client.get(f"/?token={TOKEN}")  # the page opened once with its token: the cookie carries it after
    assert page.status_code == 200 and f"rsir_token={TOKEN}" in page.headers["set-cookie"]
    assert "HttpOnly" in page.headers["set-cookie"]
    assert client.get("/static/search.js").status_code == 200
    assert client.get("/api/search/id", params={"id": "beach/beach00"}).status_code == 200
