"""The annotation API in-process on the demo archive (SQLite and PostgreSQL): pairs, answers, claims,
undo, background rounds, dashboard, validation, safe image paths, token auth."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotate_support import (  # noqa: E402
    archive_copy,  # noqa: F401  (fixture)
    db_url,  # noqa: F401  (fixture)
    demo_embeddings,  # noqa: F401  (fixture)
    open_campaign,
    unique,
    wait_for,
)

from rsir.active.db import ItemRow, QuestionRow  # noqa: E402

SHARED = "s3cret-s3cret-s3cret"  # the owner's token


@pytest.fixture
def campaign(archive_copy, demo_embeddings, db_url):  # noqa: F811
    c = open_campaign(archive_copy, demo_embeddings, db_url)
    yield c
    c.stop(timeout=30)
    c.store.dispose()


@pytest.fixture
def client(campaign, tmp_path):
    from rsir.app.annotate import create_annotate_app

    with TestClient(create_annotate_app(campaign, cache_dir=tmp_path / "thumbs")) as c:
        yield c


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _fails(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)
    for word in words:
        assert word in body["detail"], body["detail"]
    assert "Traceback" not in body["detail"] and "File " not in body["detail"]
    return body["detail"]


def _ready(client, who: str) -> dict:
    """The annotator's pair once the first round is selected."""
    return wait_for(lambda: (s := _ok(client.post("/api/next", json={"annotator": who})))["question"] and s,
                    what=f"a pair for {who}")  # fmt: skip


def _answer(client, who: str, qid: int, label: str = "similar") -> dict:
    return _ok(client.post("/api/answer", json={"annotator": who, "question_id": qid, "label": label}))


def _rows(campaign, round_: int | None = None) -> list:
    with campaign.store.session() as s:
        q = select(QuestionRow).where(QuestionRow.campaign_id == campaign.id)
        if round_ is not None:
            q = q.where(QuestionRow.round == round_)
        return list(s.scalars(q.order_by(QuestionRow.id)).all())


def test_a_pair_is_shown_answered_once_and_recorded_with_annotator_and_time(client, campaign):
    state = _ready(client, "alice")
    q = state["question"]
    assert state["phase"] == "ready" and state["campaign"] == campaign.name
    assert q["a"]["idx"] < q["b"]["idx"] and q["a"]["image"] == f"/api/images/{q['a']['idx']}"
    assert state["progress"] | {"answered": 0, "total": 8, "round": 0, "rounds_total": 2} == state["progress"]
    again = _ok(client.post("/api/next", json={"annotator": "alice"}))
    assert again["question"]["id"] == q["id"]  # a reload shows the same pair until it is answered

    first = _answer(client, "alice", q["id"], "dissimilar")
    assert first["stored"] and first["label"] == "dissimilar" and first["annotator"] == "alice"
    answered_at = _rows(campaign, 0)[0].answered_at
    twice = _answer(client, "alice", q["id"], "dissimilar")  # a double submit: stored once
    assert twice["stored"]
    rows = [r for r in _rows(campaign, 0) if r.label is not None]
    assert len(rows) == 1 and (rows[0].id, rows[0].label, rows[0].annotator) == (q["id"], 0, "alice")
    assert rows[0].answered_at == answered_at and rows[0].answered_at is not None

    after = _ok(client.post("/api/next", json={"annotator": "alice"}))
    assert after["question"]["id"] != q["id"]
    assert after["progress"]["answered"] == 1 and after["progress"]["mine"] == 1
    assert after["progress"]["dissimilar"] == 1 and after["progress"]["campaign_answered"] == 1


def test_annotators_get_different_pairs_and_the_first_answer_wins(client, campaign):
    _ready(client, "warmup")  # the first round exists
    names = [f"ann{k}" for k in range(6)]
    got: dict[str, int] = {}

    def claim(name: str) -> None:
        got[name] = _ok(client.post("/api/next", json={"annotator": name}))["question"]["id"]

    threads = [threading.Thread(target=claim, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got.values()) | {_ready(client, "warmup")["question"]["id"]}) == 7  # all different

    # a pair someone else holds cannot be answered by accident
    _fails(client.post("/api/answer", json={"annotator": "ann1", "question_id": got["ann0"], "label": "similar"}),
           409, "another annotator")  # fmt: skip
    assert _answer(client, "ann0", got["ann0"], "similar")["stored"]
    late = _answer(client, "ann1", got["ann0"], "dissimilar")  # answered already by ann0: theirs is kept
    assert late["stored"] is False and late["label"] == "similar" and late["annotator"] == "ann0"
    assert "ann0" in late["message"]
    row = next(r for r in _rows(campaign) if r.id == got["ann0"])
    assert (row.label, row.annotator) == (1, "ann0")


def test_an_expired_claim_frees_the_pair_for_someone_else(archive_copy, demo_embeddings, db_url, tmp_path):  # noqa: F811
    from rsir.app.annotate import create_annotate_app

    c = open_campaign(archive_copy, demo_embeddings, db_url, claim_seconds=0.3)
    with TestClient(create_annotate_app(c, cache_dir=tmp_path / "t")) as client:
        held = _ready(client, "alice")["question"]["id"]
        time.sleep(0.5)
        assert _ready(client, "bob")["question"]["id"] == held  # alice left: the pair is free again
    c.stop(timeout=30)


def test_an_undone_pair_is_held_for_the_claim_time_only(archive_copy, demo_embeddings, db_url, tmp_path):  # noqa: F811
    from rsir.app.annotate import create_annotate_app

    c = open_campaign(archive_copy, demo_embeddings, db_url, claim_seconds=0.3)
    with TestClient(create_annotate_app(c, cache_dir=tmp_path / "t")) as client:
        held = _ready(client, "alice")["question"]["id"]
        _answer(client, "alice", held)
        assert _ok(client.post("/api/undo", json={"annotator": "alice"}))["question"]["id"] == held
        time.sleep(0.5)  # alice left after her undo: like any claim, hers ends after --claim-minutes
        assert _ready(client, "bob")["question"]["id"] == held
    c.stop(timeout=30)


def test_undo_takes_back_the_last_answer_and_shows_that_pair_again(client, campaign):
    q1 = _ready(client, "alice")["question"]["id"]
    _answer(client, "alice", q1, "similar")
    q2 = _ready(client, "alice")["question"]["id"]
    _answer(client, "alice", q2, "skip")
    undone = _ok(client.post("/api/undo", json={"annotator": "alice"}))
    assert undone["phase"] == "ready" and undone["question"]["id"] == q2 and undone["question"]["label"] == "skip"
    assert undone["progress"]["answered"] == 1
    assert _ready(client, "alice")["question"]["id"] == q2  # it is alice's current pair
    _fails(client.post("/api/undo", json={"annotator": "bob"}), 409, "nothing to undo")
    _answer(client, "alice", q2, "dissimilar")
    assert {r.id: r.label for r in _rows(campaign) if r.label is not None} == {q1: 1, q2: 0}


def test_a_complete_round_trains_in_the_background_and_the_next_round_follows(
    archive_copy,  # noqa: F811
    demo_embeddings,  # noqa: F811
    tmp_path,
):
    from rsir.app.annotate import create_annotate_app

    # many steps: training lasts long enough to watch the server answer meanwhile
    c = open_campaign(archive_copy, demo_embeddings, str(tmp_path / "c.db"), steps=60)
    with TestClient(create_annotate_app(c, cache_dir=tmp_path / "t")) as client:
        for k in range(8):
            qid = _ready(client, "alice")["question"]["id"]
            started = time.perf_counter()
            _answer(client, "alice", qid, "similar" if k % 3 == 0 else "dissimilar")
            assert time.perf_counter() - started < 5  # the last answer does not wait for training
        state = _ok(client.post("/api/next", json={"annotator": "alice"}))
        assert state["phase"] == "preparing" and "next round" in state["message"] and state["question"] is None
        assert c.busy
        _fails(client.post("/api/undo", json={"annotator": "alice"}), 409, "training")
        assert _ok(client.get("/api/state", params={"annotator": "alice"}))["phase"] == "preparing"
        nxt = _ready(client, "alice")
        assert nxt["progress"]["round"] == 1 and nxt["progress"]["total"] == 4
        board = _ok(client.get("/api/dashboard"))
        assert board["metric"] == "map@20" and 0 < board["baseline"] <= 1
        assert [p["round"] for p in board["curve"]] == [0] and board["curve"][0]["n_labelled"] == 8
        assert 0 < board["curve"][0]["value"] <= 1
        assert [(r["round"], r["annotator"], r["answers"]) for r in board["answers"]] == [(0, "alice", 8)]
        svg = client.get("/api/dashboard/curve.svg")
        assert svg.headers["content-type"].startswith("image/svg+xml") and 'id="curve"' in svg.text
        # the last round: answered, trained, and the campaign is finished
        _answer(client, "alice", nxt["question"]["id"], "similar")
        for _ in range(3):
            _answer(client, "bob", _ready(client, "bob")["question"]["id"], "skip")
        done = wait_for(lambda: (s := _ok(client.post("/api/next", json={"annotator": "bob"})))["phase"] == "done"
                        and s, what="the campaign to finish")  # fmt: skip
        assert "finished" in done["message"] and done["question"] is None
        assert len(_ok(client.get("/api/dashboard"))["curve"]) == 2
    c.stop(timeout=30)


def test_pages_and_dashboard(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/annotate.js" in page.text and "Similar" in page.text
    assert client.get("/static/annotate.js").status_code == 200
    board = client.get("/dashboard")
    assert board.status_code == 200 and "/api/dashboard/curve.svg" in board.text
    _ready(client, "alice")
    svg = client.get("/api/dashboard/curve.svg").text  # nothing trained yet: only the no-training line
    assert svg.startswith("<svg") and "no training" in svg and 'id="curve"' not in svg
    assert "/api/next" in _ok(client.get("/openapi.json"))["paths"]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/next", {}, 422, ["annotator", "required"]),
        ("/api/next", {"annotator": ""}, 422, ["annotator"]),
        ("/api/next", {"annotator": "x" * 65}, 422, ["annotator", "64"]),
        ("/api/next", {"annotator": "<script>"}, 422, ["annotator", "pattern"]),
        ("/api/next", {"annotator": "oracle"}, 422, ["reserved"]),
        ("/api/next", {"annotator": "a", "role": "admin"}, 422, ["role", "not permitted"]),
        ("/api/answer", {"annotator": "a", "question_id": 1}, 422, ["label", "required"]),
        ("/api/answer", {"annotator": "a", "question_id": 1, "label": "yes"}, 422, ["label", "similar"]),
        ("/api/answer", {"annotator": "a", "question_id": "one", "label": "skip"}, 422, ["question_id", "integer"]),
        ("/api/answer", {"annotator": "a", "question_id": 0, "label": "skip"}, 422, ["question_id"]),
        ("/api/answer", {"annotator": "a", "question_id": 999999, "label": "skip"}, 404, ["no question"]),
        ("/api/undo", {"annotator": None}, 422, ["annotator"]),
    ],
)
def test_bad_requests_get_clear_errors(client, path, body, status, words):
    _fails(client.post(path, json=body), status, *words)


def test_bodies_that_are_not_json_or_too_large_are_refused(client):
    _fails(client.post("/api/next", content=b"annotator=alice", headers={"content-type": "text/plain"}), 422)
    _fails(client.post("/api/next", content=b"{not json", headers={"content-type": "application/json"}), 422)
    _fails(client.post("/api/next", json={"annotator": "a" * 40_000}), 413, "larger")
    _fails(client.get("/api/images/-1"), 422)
    _fails(client.get("/api/images/abc"), 422)
    _fails(client.get("/api/images/99999"), 404, "no item")
    _fails(client.get("/api/state", params={"annotator": "bad/name"}), 422, "annotator")


def test_images_come_at_full_resolution_and_never_from_outside_the_archive(client, campaign, archive_copy, tmp_path):  # noqa: F811
    root = Path(archive_copy.root)
    with campaign.store.session() as s:
        path0 = s.get(ItemRow, (campaign.id, 0)).path
    image = client.get("/api/images/0")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == (root / path0).read_bytes()  # the file itself: full resolution

    outside = tmp_path / "secret.jpg"
    outside.write_bytes((root / path0).read_bytes())
    tag = unique("link")  # the archive copy is shared by the session
    (root / f"{tag}-outside.jpg").symlink_to(outside)
    (root / f"{tag}-inside.jpg").symlink_to(root / path0)
    for k, (path, status) in enumerate(
        [
            ("../secret.jpg", 403),
            (str(outside), 403),
            ("/etc/passwd", 403),
            (f"{tag}-outside.jpg", 403),
            (f"{tag}-inside.jpg", 200),
            ("nothing/here.jpg", 404),
        ]  # fmt: skip
    ):
        with campaign.store.session() as s:  # a tampered record must not expose other files
            s.execute(update(ItemRow).where((ItemRow.campaign_id == campaign.id) & (ItemRow.idx == k + 1))
                      .values(path=path))  # fmt: skip
        response = client.get(f"/api/images/{k + 1}")
        assert response.status_code == status, (path, response.text)
        if status != 200:
            assert "secret" not in response.text and "root:" not in response.text
    assert client.get("/api/images/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    assert client.get("/static/../annotate.py").status_code == 404


def test_formats_a_browser_cannot_show_come_as_full_size_jpeg(client, campaign, archive_copy):  # noqa: F811
    import io

    import numpy as np
    from PIL import Image

    name = unique("scene") + ".tif"
    pixels = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(Path(archive_copy.root) / name)
    with campaign.store.session() as s:
        s.execute(update(ItemRow).where((ItemRow.campaign_id == campaign.id) & (ItemRow.idx == 0)).values(path=name))
    response = client.get("/api/images/0")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (300, 200)  # not shrunk


def test_with_a_token_every_request_must_carry_it(campaign, tmp_path):
    from rsir.app.annotate import create_annotate_app

    app = create_annotate_app(campaign, token=SHARED, cache_dir=tmp_path / "t")
    with TestClient(app) as client:
        for path in ("/", "/dashboard", "/api/dashboard", "/api/images/0", "/static/annotate.js", "/healthz"):
            _fails(client.get(path), 401, "token")
        _fails(client.post("/api/next", json={"annotator": "a"}), 401, "token")
        _fails(client.get("/api/dashboard", headers={"X-RSIR-Token": "wrong"}), 401)
        assert client.get("/api/dashboard", headers={"Authorization": f"Bearer {SHARED}"}).status_code == 200
        assert client.post("/api/next", json={"annotator": "a"}, headers={"X-RSIR-Token": SHARED}).status_code == 200
        page = client.get(f"/?token={SHARED}")  # a link with the token: the browser keeps it as a cookie
        assert page.status_code == 200 and "rsir_token" in page.headers["set-cookie"]
        assert client.get("/api/images/0").status_code == 200


def test_resuming_keeps_the_campaign_and_checks_given_options(archive_copy, demo_embeddings, db_url):  # noqa: F811
    from rsir.active.store import CampaignMismatch
    from rsir.app.annotate.campaign import AnnotationCampaign, ServeOptions

    name = unique()
    first = open_campaign(archive_copy, demo_embeddings, db_url, name=name)
    again = open_campaign(archive_copy, demo_embeddings, db_url, name=name)
    assert again.id == first.id and again.campaign.settings == first.campaign.settings
    plain = AnnotationCampaign.open(archive_copy, db_url, name, ServeOptions(), embeddings=demo_embeddings)
    assert plain.id == first.id and plain.campaign.settings.per_round == 4  # options left out: the stored ones
    with pytest.raises(CampaignMismatch, match="per-round 5"):
        open_campaign(archive_copy, demo_embeddings, db_url, name=name, per_round=5)
    for c in (first, again, plain):
        c.store.dispose()
