"""Personal annotator tokens (`rsir anneal invite`): answers and undo are bound to the invited name, no one
else may answer under it, the shared token stays the owner's (and the dashboard's); names are compared
case-insensitively; the 409 for someone else's pair does not talk about the caller's claim."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotate_support import (  # noqa: E402
    archive_copy,  # noqa: F401  (fixture)
    db_url,  # noqa: F401  (fixture)
    demo_embeddings,  # noqa: F401  (fixture)
    open_campaign,
    wait_for,
)

from rsir.active.db import AnnotatorRow, QuestionRow  # noqa: E402
from rsir.cli.main import app as cli  # noqa: E402

SHARED = "owner-s3cret-owner-s3cret"


@pytest.fixture
def campaign(archive_copy, demo_embeddings, db_url):  # noqa: F811
    c = open_campaign(archive_copy, demo_embeddings, db_url)
    c.db_url = db_url
    yield c
    c.stop(timeout=30)
    c.store.dispose()


def invite(campaign, name: str) -> dict:
    result = CliRunner().invoke(cli, ["anneal", "invite", campaign.name, name, "--db", campaign.db_url,
                                      "--url", "http://annotate.example:8000/", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _fails(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    return detail


def _as(token: str) -> dict:
    return {"X-RSIR-Token": token}


def _ready(client, who: str, headers: dict) -> dict:
    return wait_for(
        lambda: (s := _ok(client.post("/api/next", json={"annotator": who}, headers=headers)))["question"] and s,
        what=f"a pair for {who}",
    )


def _answers(campaign) -> dict[int, tuple[int, str]]:
    with campaign.store.session() as s:
        rows = s.execute(
            select(QuestionRow.id, QuestionRow.label, QuestionRow.annotator).where(
                (QuestionRow.campaign_id == campaign.id) & QuestionRow.label.is_not(None)
            )
        ).all()
    return {r.id: (r.label, r.annotator) for r in rows}


def test_a_personal_token_answers_and_undoes_as_its_annotator_only(campaign, tmp_path):
    from rsir.app.annotate import create_annotate_app

    alice = invite(campaign, "alice")
    assert alice["link"] == f"http://annotate.example:8000/?token={alice['token']}" and alice["annotator"] == "alice"
    with campaign.store.session() as s:  # the database keeps a hash, never the token
        row = s.scalar(select(AnnotatorRow).where(AnnotatorRow.campaign_id == campaign.id))
        assert row.name == "alice" and alice["token"] not in (row.token_hash, row.name, row.name_key)
    with TestClient(create_annotate_app(campaign, token=SHARED, cache_dir=tmp_path / "t")) as client:
        me = _ok(client.get("/api/me", headers=_as(alice["token"])))
        assert me == {"role": "annotator", "annotator": "alice"}
        assert _ok(client.get("/api/me", headers=_as(SHARED))) == {"role": "owner", "annotator": None}

        q = _ready(client, "alice", _as(alice["token"]))["question"]["id"]
        # alice's link cannot answer, claim or undo as anyone else
        for path, body in (("/api/answer", {"question_id": q, "label": "similar"}), ("/api/next", {}),
                           ("/api/undo", {})):  # fmt: skip
            _fails(client.post(path, json={"annotator": "bob", **body}, headers=_as(alice["token"])), 403, "alice")
        # and no one else can answer as alice: not the owner's shared token, in no spelling
        for name in ("alice", "Alice", " ALICE "):
            body = {"annotator": name, "question_id": q, "label": "dissimilar"}
            _fails(client.post("/api/answer", json=body, headers=_as(SHARED)), 403, "personal link")
            _fails(client.post("/api/undo", json={"annotator": name}, headers=_as(SHARED)), 403, "personal link")
        _fails(client.get("/api/state", params={"annotator": "Alice"}, headers=_as(SHARED)), 403, "personal link")
        answer = {"annotator": "alice", "question_id": q, "label": "similar"}
        assert _ok(client.post("/api/answer", json=answer, headers=_as(alice["token"])))["annotator"] == "alice"
        assert _answers(campaign) == {q: (1, "alice")}
        assert (
            _ok(client.post("/api/undo", json={"annotator": "alice"}, headers=_as(alice["token"])))["question"]["id"]
            == q
        )
        assert _answers(campaign) == {}

        # the owner answers under any other name and keeps the dashboard; alice's link does not open it
        owner_q = _ready(client, "carol", _as(SHARED))["question"]["id"]
        assert owner_q != q
        for path in ("/dashboard", "/api/dashboard", "/api/dashboard/curve.svg"):
            _fails(client.get(path, headers=_as(alice["token"])), 403, "owner")
            assert client.get(path, headers=_as(SHARED)).status_code == 200, path
        _fails(client.get("/api/me", headers=_as("not-a-token-of-this-campaign")), 401, "token")

        again = invite(campaign, "Alice")  # a new link for the same person replaces the old one
        assert again["token"] != alice["token"]
        _fails(client.get("/api/me", headers=_as(alice["token"])), 401, "token")
        assert _ok(client.get("/api/me", headers=_as(again["token"])))["annotator"] == "Alice"


def test_an_invite_link_sets_the_cookie_and_works_on_an_open_loopback_server(campaign, tmp_path):
    from rsir.app.annotate import create_annotate_app

    bob = invite(campaign, "bob")
    with TestClient(create_annotate_app(campaign, cache_dir=tmp_path / "t")) as client:  # no shared token
        _fails(client.post("/api/next", json={"annotator": "bob"}), 403, "personal link")  # bob's name is his
        page = client.get(f"/?token={bob['token']}")  # the link he was sent
        assert page.status_code == 200 and "rsir_token=" in page.headers["set-cookie"]
        assert _ok(client.get("/api/me")) == {"role": "annotator", "annotator": "bob"}  # the cookie carries it
        q = _ready(client, "bob", {})["question"]["id"]
        _ok(client.post("/api/answer", json={"annotator": "bob", "question_id": q, "label": "skip"}))
        assert _answers(campaign) == {q: (-1, "bob")}
        client.cookies.clear()
        assert _ok(client.get("/api/me"))["role"] == "owner"  # no token on an open server: the owner
        assert client.get("/api/me", headers=_as("unknown-token-unknown")).json()["role"] == "owner"


def test_someone_who_never_held_a_pair_is_not_told_their_claim_expired(campaign, tmp_path):
    from rsir.app.annotate import create_annotate_app

    with TestClient(create_annotate_app(campaign, cache_dir=tmp_path / "t")) as client:
        held = _ready(client, "dora", {})["question"]["id"]
        detail = _fails(client.post("/api/answer", json={"annotator": "eve", "question_id": held, "label": "similar"}),
                        409, "another annotator holds this pair")  # fmt: skip
        assert "your claim" not in detail


@pytest.mark.parametrize("name", ["oracle", "Oracle", "ORACLE", " oRaClE "])
def test_the_oracle_name_is_reserved_in_any_case(campaign, tmp_path, name):
    from rsir.app.annotate import create_annotate_app

    with TestClient(create_annotate_app(campaign, cache_dir=tmp_path / "t")) as client:
        _fails(client.post("/api/next", json={"annotator": name}), 422, "reserved")
        _fails(client.get("/api/state", params={"annotator": name}), 422, "reserved")
    result = CliRunner().invoke(cli, ["anneal", "invite", campaign.name, name, "--db", campaign.db_url])
    assert result.exit_code == 2 and "reserved" in result.stderr


def test_invite_errors_are_clear(campaign):
    run = lambda *args: CliRunner().invoke(cli, ["anneal", "invite", *args, "--db", campaign.db_url])  # noqa: E731
    unknown = run("no-such-campaign", "alice")
    assert unknown.exit_code == 2 and "no campaign 'no-such-campaign'" in unknown.stderr
    for bad in ("", "   ", "a/b", "x" * 65):
        result = run(campaign.name, bad)
        assert result.exit_code == 2 and "annotator name" in result.stderr and "Traceback" not in result.output
